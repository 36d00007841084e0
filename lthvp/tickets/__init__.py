"""Source models and their sparse tickets: architectures, pre-trained weights, masks and pruning,
IMP, compression arms, ticket families and ticket file formats."""

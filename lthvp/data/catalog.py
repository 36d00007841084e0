"""Names the dashboard needs without importing torch: the target datasets each preset offers
and the source models' class names (for label-mapping views)."""

FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot"]

TARGETS = {
    "mini": ["digits", "fashion_mnist", "fashion_mnist_1k", "mnist", "kmnist", "cifar10", "svhn"],
    "paper": ["cifar10", "cifar100", "svhn", "gtsrb", "flowers102", "dtd", "oxford_pets", "eurosat", "food101"],
}

GENERATED_SOURCES = ["fractals", "glyphs"]  # v3 source candidates (lthvp.data.sources), not offered as targets

SOURCE_CLASSES = {"mini": FASHION_CLASSES}  # paper: ImageNet's 1,000 classes, shown by index

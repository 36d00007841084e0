"""Drawing: pure plotly figures, static figures for the write-up, and the dashboard's page helpers and frame."""

"""pgqueue's SQL files, shipped inside the package as ``pgqueue.sql``."""

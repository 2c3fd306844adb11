"""The retrieval family: models that find candidates among all items (query and candidate towers, an index)."""

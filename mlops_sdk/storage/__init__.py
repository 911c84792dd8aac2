"""Storage backends: where blobs (artifacts, dataset files, models) live."""

"""File I/O of the viewer (no Qt): header scan of folders and pixel decoding."""

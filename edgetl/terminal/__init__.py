"""The operator terminal: a web page at the line, talking to the server only through its gRPC API."""

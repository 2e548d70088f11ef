"""The gRPC server: app, servicers (one module per service), interceptor, conversion."""

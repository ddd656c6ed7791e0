"""STS: the Query protocol, the service model, the engine and its tokens."""

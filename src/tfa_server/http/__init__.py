"""HTTP/1.1 on asyncio streams with h11: the transport, the messages and the router."""

"""The tfa API's wire types, written once for the server, its OpenAPI document and the client.

Imports neither the server, the client nor Textual: both sides import it.
"""

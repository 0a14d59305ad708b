"""One module per console page: its routes, the API calls it makes, and its charts."""

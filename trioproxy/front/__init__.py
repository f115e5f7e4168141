"""The ASGI callable hypercorn serves: routes each request, checks who may pass, forwards."""

"""The floor: an empty handler under awslambdaric (echoes nothing, does nothing)."""


def handler(event, context):
    return {}

"""The floor with Powertools' decorators: Logger, Tracer and Metrics around a handler
that does nothing, to weigh the utilities' fixed cost per invocation."""

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger()
metrics = Metrics()
tracer = Tracer()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event, context):
    return {}

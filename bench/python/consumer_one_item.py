"""update-cart-products in Python with Powertools, on the one-item model: the second
baseline of `scripts/bench`, so the tables separate what the design saves from what the
language saves.

The order is one item with its lines inside, as src/store.rs keeps it. Completing it is
one conditional UpdateItem (ORDERED -> PROCESSED, completions + 1), its refusal read
from ReturnValuesOnConditionCheckFailure=ALL_OLD. Idempotency is Powertools' own, the
documented way: idempotent_function with DynamoDBPersistenceLayer keyed by order id, its
record an item of its own (INPROGRESS, then COMPLETED). Powertools has no mode that
keeps the record on the business item. Logger, Metrics, Tracer and the batch utility as
in consumer.py.
"""

import json
import os
from datetime import datetime, timezone

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)

logger = Logger()
metrics = Metrics()
tracer = Tracer()
dynamodb = boto3.client("dynamodb")
TABLE = os.environ["TABLE_NAME"]
processor = BatchProcessor(event_type=EventType.SQS)
persistence = DynamoDBPersistenceLayer(
    table_name=TABLE,
    key_attr="PK",
    sort_key_attr="SK",
    static_pk_value=f"IDEMPOTENCY#{os.environ.get('AWS_LAMBDA_FUNCTION_NAME', 'consumer')}",
)
config = IdempotencyConfig(event_key_jmespath="order_id", payload_validation_jmespath="lines")


class OrderConflict(Exception):
    """The order is missing or does not match the message."""


@idempotent_function(data_keyword_argument="message", config=config, persistence_store=persistence)
def complete(message: dict) -> dict:
    now = datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")
    order_id = message["order_id"]
    try:
        dynamodb.update_item(
            TableName=TABLE,
            Key={"PK": {"S": f"ORDER#{order_id}"}, "SK": {"S": "ORDER"}},
            ConditionExpression="#status = :ordered AND user_id = :user AND line_count = :line_count",
            UpdateExpression="SET #status = :processed, processed_at = :now ADD completions :one",
            ExpressionAttributeNames={"#status": "order_status"},
            ExpressionAttributeValues={
                ":ordered": {"S": "ORDERED"},
                ":processed": {"S": "PROCESSED"},
                ":user": {"S": message["user_id"]},
                ":line_count": {"N": str(len(message["lines"]))},
                ":now": {"S": now},
                ":one": {"N": "1"},
            },
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
    except dynamodb.exceptions.ConditionalCheckFailedException as refused:
        order = refused.response.get("Item") or {}
        if order.get("order_status", {}).get("S") == "PROCESSED":
            return {"order_id": order_id, "completed": False}
        raise OrderConflict(f"order {order_id} does not match the message") from refused
    return {"order_id": order_id, "completed": True}


@tracer.capture_method
def record_handler(record: SQSRecord) -> None:
    message = json.loads(record.body)
    if message.get("version") != 1 or not message.get("lines"):
        raise ValueError("malformed order message")
    logger.set_correlation_id(message["order_id"])
    result = complete(message=message)
    if result["completed"]:
        metrics.add_metric(name="OrdersCompleted", unit=MetricUnit.Count, value=1)
        logger.info("order completed")
    else:
        metrics.add_metric(name="OrderMessagesReplayed", unit=MetricUnit.Count, value=1)
        logger.info("order already completed; redelivered message ignored")


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event, context):
    config.register_lambda_context(context)
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )

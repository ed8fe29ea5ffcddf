"""process-cart-products in Python with Powertools: the baseline of `scripts/bench`.

Written as a competent team would today: Logger with the Lambda context and the order
id as correlation id, Metrics (the same names and namespace as the Rust function,
EMF), Tracer, BatchProcessor + process_partial_response over the DynamoDB stream,
boto3 client created once, SendMessageBatch by 10, and the same message JSON as
src/message.rs (tests prove each side consumes the other's messages).
"""

import json
import os

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import (
    DynamoDBRecord,
    DynamoDBRecordEventName,
)

logger = Logger()
metrics = Metrics()
tracer = Tracer()
sqs = boto3.client("sqs")
QUEUE_URL = os.environ["QUEUE_URL"]
processor = BatchProcessor(event_type=EventType.DynamoDBStreams)
outgoing: list[tuple[str, dict]] = []


def order_message(image: dict) -> dict:
    """The versioned order message, field for field as src/message.rs writes it."""
    lines = image["lines"]
    if not lines:
        raise ValueError(f"order {image['order_id']} has no lines")
    return {
        "version": 1,
        "order_id": image["order_id"],
        "user_id": image["user_id"],
        "lines": [
            {
                "product_id": line["product_id"],
                "quantity": int(line["quantity"]),
                "unit_price_minor": int(line["unit_price_minor"]),
            }
            for line in lines
        ],
        "total_minor": int(image["total_minor"]),
        "currency": image["currency"],
        "placed_at": image["placed_at"],
    }


@tracer.capture_method
def record_handler(record: DynamoDBRecord) -> None:
    image = record.dynamodb.new_image if record.dynamodb else None
    if (
        record.event_name != DynamoDBRecordEventName.INSERT
        or not image
        or image.get("entity") != "ORDER"
        or image.get("order_status") != "ORDERED"
    ):
        return
    outgoing.append((record.dynamodb.sequence_number, order_message(image)))


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event, context):
    outgoing.clear()
    response = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    failures = list(response["batchItemFailures"])
    trace_header = os.environ.get("_X_AMZN_TRACE_ID")
    for start in range(0, len(outgoing), 10):
        chunk = outgoing[start : start + 10]
        entries = []
        for index, (_, message) in enumerate(chunk):
            entry = {
                "Id": str(index),
                "MessageBody": json.dumps(message, separators=(",", ":")),
                "MessageAttributes": {
                    "order_id": {"DataType": "String", "StringValue": message["order_id"]}
                },
            }
            if trace_header:
                entry["MessageSystemAttributes"] = {
                    "AWSTraceHeader": {"DataType": "String", "StringValue": trace_header}
                }
            entries.append(entry)
        result = sqs.send_message_batch(QueueUrl=QUEUE_URL, Entries=entries)
        failed = result.get("Failed") or []
        if failed:
            first = min(int(f["Id"]) for f in failed)
            metrics.add_metric(name="BatchItemFailures", unit=MetricUnit.Count, value=1)
            logger.warning("order message not sent", extra={"reason": failed[0].get("Message")})
            failures.append({"itemIdentifier": chunk[first][0]})
            break
        metrics.add_metric(name="OrdersForwarded", unit=MetricUnit.Count, value=len(chunk))
        for _, message in chunk:
            logger.set_correlation_id(message["order_id"])
            logger.info("order forwarded")
    return {"batchItemFailures": failures}

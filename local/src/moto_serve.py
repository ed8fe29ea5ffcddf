"""moto_server with the two fixes the local stack depends on.

`local/src/moto.rs` runs this with the Python of moto's virtual environment
(`python -c <this text> -H 127.0.0.1 -p PORT`); it patches moto in this process, then
starts moto's own server with the same arguments.

Why: moto (5.2.1 pinned, unchanged up to 5.2.5) runs TransactWriteItems by deep-copying
every table the transaction touches and, when the transaction is cancelled, putting
the copy in the table's place. On a server used by several clients at once, that:

1. detaches the table's stream. The copy has its own stream shard; every shard
   iterator handed out before keeps reading the old shard, which never receives
   another record. One cancelled transaction (a duplicate order request, a message
   redelivered for a processed order) and the local stream source stops forwarding
   orders, silently: this was the stall of 200 users at 16 clients.
2. loses acknowledged writes. A PutItem that lands while a transaction runs is
   dropped by the rollback (measured: 72 of 300 acknowledged puts lost while another
   client's transactions were cancelled).
3. costs a copy of the whole table per transaction, so the stack slows as it fills.

Separately, moto answers every Query on the base table by sorting the whole table and
keeping the items of one partition: O(table) per Query, so a run of 2000 orders spent
most of the emulator's time sorting (the service reads carts and orders by Query).

The fixes:

- One lock around every DynamoDB and DynamoDB Streams request, so a transaction is
  atomic with respect to every other call, as DynamoDB's are. (moto runs under
  Python's global lock anyway, so this costs no parallelism.) It also makes a stream
  record's sequence number unique: moto numbers a record by the shard's length
  before appending it.
- TransactWriteItems without the table copy: the items the transaction names are
  saved before it runs and put back in place if it is cancelled, and the stream
  records it added are removed. Tables and shards keep their identity, so every
  iterator stays attached.

`local/tests/emulator.rs` reproduces each defect; it fails against plain moto.

Two additions serve the local CloudWatch plane (`local/src/cloudwatch/`), which
computes the AWS metrics moto does not:

- Every DynamoDB write answers with an `x-local-item-images` header: each item it
  touched, as it was before and after, taken under the lock. The stack's proxy turns
  them into consumed write capacity by DynamoDB's rules and removes the header.
- `GET /moto-api/local/sqs-stats`: each queue's approximate counts, its oldest
  message's send time and its sent, received and deleted counters.
"""

import copy
import json
import sys
import threading

import moto
import moto.dynamodb.models as dynamodb_models
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table
from moto.dynamodb.responses import DynamoHandler
from moto.dynamodbstreams.responses import DynamoDBStreamsHandler
from moto.server import main
from moto.core.utils import unix_time_millis
from moto.sqs.models import Queue, SQSBackend

# The moto versions whose internals these patches were written against and tested on.
TESTED = ("5.2.",)
if not moto.__version__.startswith(TESTED):
    sys.exit(
        f"local: moto {moto.__version__} is not a version the local stack's fixes "
        f"were tested with ({', '.join(TESTED)}x); install requirements.txt"
    )

DYNAMODB = threading.RLock()

# The images of the items a write touches, before and after it, as a response header
# the local stack's proxy reads (and removes) to count write capacity units by
# DynamoDB's rules, index writes included (local/src/capacity.rs). Taken under the
# lock, so they are exactly the items the write saw.
ITEM_IMAGES_HEADER = "x-local-item-images"


def written_keys(action, params):
    """(operation, table name, key or item attributes) for each item a write names."""
    if action in ("PutItem",):
        return [("Put", params.get("TableName"), params.get("Item") or {})]
    if action in ("UpdateItem", "DeleteItem"):
        return [(action[:-4], params.get("TableName"), params.get("Key") or {})]
    if action == "TransactWriteItems":
        found = []
        for entry in params.get("TransactItems") or []:
            for operation, body in entry.items():
                found.append((operation, body.get("TableName"), body.get("Item") or body.get("Key") or {}))
        return found
    if action == "BatchWriteItem":
        found = []
        for table, requests in (params.get("RequestItems") or {}).items():
            for request in requests:
                if "PutRequest" in request:
                    found.append(("Put", table, request["PutRequest"].get("Item") or {}))
                elif "DeleteRequest" in request:
                    found.append(("Delete", table, request["DeleteRequest"].get("Key") or {}))
        return found
    return []


def current_image(backend, table_name, attributes):
    try:
        table = backend.get_table(table_name)
        hash_key = DynamoType(attributes[table.hash_key_attr])
        range_key = None
        if table.range_key_attr is not None:
            range_key = DynamoType(attributes[table.range_key_attr])
        item = table.get_item(hash_key, range_key)
    except Exception:  # noqa: BLE001 - moto's own validation answers a malformed request
        return None
    return None if item is None else item.to_json()["Attributes"]


def serialised(call_action, report_images=False):
    def locked(self):
        with DYNAMODB:
            if not report_images:
                return call_action(self)
            action = (self.headers.get("X-Amz-Target") or "").split(".")[-1]
            params = getattr(self, "params", None) or {}
            try:
                touched = written_keys(action, params)
            except Exception:  # noqa: BLE001 - a malformed request is moto's to reject
                touched = []
            backend = self.dynamodb_backend if touched else None
            before = [current_image(backend, table, attrs) for _, table, attrs in touched]
            status, headers, body = call_action(self)
            if touched:
                images = [
                    {"operation": operation, "table": table, "before": old, "after": current_image(backend, table, attrs)}
                    for (operation, table, attrs), old in zip(touched, before)
                ]
                headers[ITEM_IMAGES_HEADER] = json.dumps(images, separators=(",", ":"))
            return status, headers, body

    return locked


DynamoHandler.call_action = serialised(DynamoHandler.call_action, report_images=True)
DynamoDBStreamsHandler.call_action = serialised(DynamoDBStreamsHandler.call_action)


class TablesStayInPlace:
    """Stands in for the `copy` module inside moto.dynamodb.models during a
    transaction: a Table "copies" as itself (so moto's rollback puts the same object
    back), everything else is copied as usual."""

    @staticmethod
    def deepcopy(value, memo=None):
        if isinstance(value, Table):
            return value
        return copy.deepcopy(value, memo)

    def __getattr__(self, name):
        return getattr(copy, name)


def touched(backend, transact_items):
    """(table, hash key, range key, a copy of the item or None) for each item the
    transaction names, and each touched stream shard with its length."""
    items, shards = [], {}
    for entry in transact_items:
        try:
            _, operation = next(iter(entry.items()))
            table = backend.tables.get(operation.get("TableName"))
            if table is None:
                continue
            attributes = operation.get("Item") or operation.get("Key") or {}
            hash_key = DynamoType(attributes[table.hash_key_attr])
            range_key = None
            if table.range_key_attr is not None:
                range_key = DynamoType(attributes[table.range_key_attr])
            item = table.get_item(hash_key, range_key)
        except Exception:  # noqa: BLE001 - a malformed entry fails moto's own validation
            continue
        items.append((table, hash_key, range_key, copy.deepcopy(item)))
        if table.stream_shard is not None:
            shards[id(table.stream_shard)] = (table.stream_shard, len(table.stream_shard.items))
    return items, list(shards.values())


def put_back(items, shards):
    for table, hash_key, range_key, item in reversed(items):
        if range_key is None:
            if item is None:
                table.items.pop(hash_key, None)
            else:
                table.items[hash_key] = item
        elif item is None:
            table.items[hash_key].pop(range_key, None)
        else:
            table.items[hash_key][range_key] = item
    for shard, length in shards:
        del shard.items[length:]


transact_write_items = DynamoDBBackend.transact_write_items


def transact_in_place(self, transact_items):
    with DYNAMODB:
        items, shards = touched(self, transact_items)
        dynamodb_models.copy = TablesStayInPlace()
        try:
            return transact_write_items(self, transact_items)
        except Exception:
            put_back(items, shards)
            raise
        finally:
            dynamodb_models.copy = copy


DynamoDBBackend.transact_write_items = transact_in_place

table_query = Table.query


def query_one_partition(self, hash_key, *args, **kwargs):
    index_name = args[6] if len(args) > 6 else kwargs.get("index_name")
    if index_name is not None or hash_key is None:
        return table_query(self, hash_key, *args, **kwargs)
    with DYNAMODB:
        partition = self.items.get(hash_key)
        if partition is None:
            items = []
        elif self.range_key_attr:
            items = sorted(partition.values(), key=lambda item: item.range_key)
        else:
            items = [partition]
        # moto's Query takes its candidates from all_items(); for this call, they are
        # the partition's (an attribute shadows the method; the lock keeps it private).
        self.all_items = lambda: items
        try:
            return table_query(self, hash_key, *args, **kwargs)
        finally:
            del self.all_items


Table.query = query_one_partition

sqs_send_message = SQSBackend.send_message
sqs_send_message_batch = SQSBackend.send_message_batch
BATCH = threading.local()


def send_message_batch_with_system_attributes(self, queue_name, entries):
    # moto's batch calls send_message once per entry with the entry's own body object:
    # the body identifies the entry whose system attributes the message gets.
    BATCH.system_attributes = {
        id(entry["MessageBody"]): entry["MessageSystemAttributes"]
        for entry in entries.values()
        if entry.get("MessageSystemAttributes")
    }
    try:
        return sqs_send_message_batch(self, queue_name, entries)
    finally:
        BATCH.system_attributes = None


def send_message_keeping_system_attributes(self, queue_name, message_body, *args, **kwargs):
    pending = getattr(BATCH, "system_attributes", None)
    if pending and kwargs.get("system_attributes") is None and id(message_body) in pending:
        kwargs["system_attributes"] = pending[id(message_body)]
    return sqs_send_message(self, queue_name, message_body, *args, **kwargs)


def count(queue, counter, n=1):
    setattr(queue, counter, getattr(queue, counter, 0) + n)


def send_message_counted(self, queue_name, message_body, *args, **kwargs):
    message = send_message_keeping_system_attributes(self, queue_name, message_body, *args, **kwargs)
    count(self.get_queue(queue_name), "local_sent")
    return message


sqs_receive_message = SQSBackend.receive_message
sqs_delete_message = SQSBackend.delete_message


def receive_message_counted(self, queue_name, *args, **kwargs):
    messages = sqs_receive_message(self, queue_name, *args, **kwargs)
    count(self.get_queue(queue_name), "local_received", len(messages))
    return messages


def delete_message_counted(self, queue_name, receipt_handle):
    sqs_delete_message(self, queue_name, receipt_handle)
    count(self.get_queue(queue_name), "local_deleted")


SQSBackend.send_message_batch = send_message_batch_with_system_attributes
SQSBackend.send_message = send_message_counted
SQSBackend.receive_message = receive_message_counted
SQSBackend.delete_message = delete_message_counted


# moto reads every queue attribute, ApproximateNumberOfMessages* included, whenever it
# looks one up: SendMessage reads `ContentBasedDeduplication` once per message. Each
# count walks every message in the queue and reads the clock once per message (through
# `datetime`), so a SendMessageBatch took 9 ms on an empty queue and 1.2 s with 6000
# messages queued, which was the emulator's time, not the sender's. Same counts, one
# clock reading, one plain comparison per message.
def _visible_undelayed(queue):
    now = unix_time_millis()
    return [m for m in queue._messages if now > m.visible_at and not now < m.delayed_until]


def _delayed(queue):
    now = unix_time_millis()
    return sum(1 for m in queue._messages if now < m.delayed_until)


def _not_visible(queue):
    now = unix_time_millis()
    return sum(1 for m in queue._messages if not now > m.visible_at)


Queue.messages = property(_visible_undelayed)
Queue.approximate_number_of_messages = property(lambda queue: len(_visible_undelayed(queue)))
Queue.approximate_number_of_messages_delayed = property(_delayed)
Queue.approximate_number_of_messages_not_visible = property(_not_visible)

def sqs_stats(request, full_url, headers):
    """GET /moto-api/local/sqs-stats: what CloudWatch's AWS/SQS metrics are made of,
    per queue: the approximate counts, the oldest message's send time (for
    ApproximateAgeOfOldestMessage) and the sent, received and deleted counters
    (moto keeps none of these counters itself)."""
    from moto.sqs.models import sqs_backends

    queues = []
    now = unix_time_millis()
    for account in list(sqs_backends.keys()):
        for region in list(sqs_backends[account].keys()):
            for queue in list(sqs_backends[account][region].queues.values()):
                messages = list(queue._messages)
                oldest = min((m.sent_timestamp for m in messages if m.sent_timestamp), default=None)
                queues.append({
                    "name": queue.name,
                    "visible": sum(1 for m in messages if now > m.visible_at and not now < m.delayed_until),
                    "not_visible": sum(1 for m in messages if not now > m.visible_at),
                    "delayed": sum(1 for m in messages if now < m.delayed_until),
                    "oldest_sent_ms": oldest,
                    "sent": getattr(queue, "local_sent", 0),
                    "received": getattr(queue, "local_received", 0),
                    "deleted": getattr(queue, "local_deleted", 0),
                })
    return 200, {"Content-Type": "application/json"}, json.dumps({"now_ms": now, "queues": queues})


import moto.moto_api._internal.urls as moto_api_urls  # noqa: E402 - after the patches above

moto_api_urls.url_paths["{0}/moto-api/local/sqs-stats"] = sqs_stats

if __name__ == "__main__":
    sys.argv[0] = "moto_server"
    sys.exit(main(sys.argv[1:]))

"""The Kafka kit: every way a service reaches Kafka, written once (docs/architecture.md,
"Kafka kit").

- `clients`: consumers, producers, the admin client and the FastStream broker, from settings;
  creating the declared topics.
- `bulk_producer`: many records out, every acknowledgement awaited.
- `publisher`: one declared topic out (`TopicPublisher`), the service checked against `TOPICS`,
  every record counted; each service's `publishers/<topic>.py` wraps one.
- `group_consumer`: the batch consumer-group member that owns its offsets (`GroupConsumer`);
  each service's raw `consumers/<topic>.py` subclasses it.
- `topic_reader`: a whole topic read into memory, caught up against its high watermarks, and
  `read_to_end`.
- `subscribers`: FastStream subscribers for the occasional event, dead-lettered.
- `dead_letters`: `transactions.rejected` with reason codes, and poison-record isolation.
- `watermarks`: high watermarks, lag and lost logs — the one module touching aiokafka internals.
- `message_counts`: `retention_messages_total` and `retention_poison_records_total`.
- `consumer_health`: what readiness says about a consumer that fails or stalls.
"""

#!/usr/bin/python3
"""watermarks.py: prints the number of messages a topic holds, as the sum of the high watermarks of
its partitions (the mock cluster keeps only ~5 MB per partition, so counting by reading would miss
messages; the offsets do not). Prints 0 for a topic that does not exist yet.

Usage: /usr/bin/python3 watermarks.py BOOTSTRAP TOPIC [--settle SECONDS]
  --settle S: query until two answers 0.3 s apart agree (messages still in flight have landed),
              at most S seconds, then print the last answer.
Debian's python3-confluent-kafka; every call is bounded by a timeout.
"""

import sys
import time

from confluent_kafka import Consumer, TopicPartition


def count(consumer, topic):
    md = consumer.list_topics(topic, timeout=5.0)
    t = md.topics.get(topic)
    if t is None or t.error is not None:
        return 0
    total = 0
    for p in t.partitions:
        _low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=5.0,
                                                    cached=False)
        total += high
    return total


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    bootstrap, topic = sys.argv[1], sys.argv[2]
    settle = float(sys.argv[4]) if len(sys.argv) >= 5 and sys.argv[3] == "--settle" else 0.0
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-watermarks",
                         "enable.auto.commit": False, "allow.auto.create.topics": False,
                         "log_level": 3})
    try:
        n = count(consumer, topic)
        deadline = time.monotonic() + settle
        while time.monotonic() < deadline:
            time.sleep(0.3)
            m = count(consumer, topic)
            if m == n:
                break
            n = m
        print(n)
    finally:
        consumer.close()


if __name__ == "__main__":
    main()

"""Writes the TensorBoard logs of trioproxy's recipe tests: `python tensorboard_logs.py logs`.

One run (``logs/trioproxy``) with a scalar ``trioproxy/computed`` over three steps, the
last being 42, written with TensorBoard's own event writer (no TensorFlow needed).
"""

import sys
import time

from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.summary.writer.event_file_writer import EventFileWriter

logdir = (sys.argv[1] if len(sys.argv) > 1 else "logs") + "/trioproxy"
writer = EventFileWriter(logdir)
for step, value in enumerate((6.0, 7.0, 42.0)):
    summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag="trioproxy/computed", simple_value=value)])
    writer.add_event(event_pb2.Event(wall_time=time.time(), step=step, summary=summary))
writer.close()

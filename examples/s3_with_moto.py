"""The same agent in S3: moto's S3 served on 127.0.0.1 stands in for the bucket.

    python examples/s3_with_moto.py        (needs the test extra: moto[server], boto3)

With a real bucket, drop the server and point AWS_ENDPOINT_URL (or nothing, for AWS) and the
usual AWS credentials at it; the memfs calls stay the same.
"""

from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path

import boto3
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import make_server

# A single-threaded server: moto's threaded one does not serialise conditional writes.
server = make_server(
    "127.0.0.1", 0, DomainDispatcherApplication(create_backend_app), threaded=False
)
threading.Thread(target=server.serve_forever, daemon=True).start()
os.environ.update(
    AWS_ENDPOINT_URL=f"http://127.0.0.1:{server.port}",
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",
    AWS_DEFAULT_REGION="us-east-1",
)
boto3.client("s3").create_bucket(Bucket="agents")

import memfs  # noqa: E402
from memfs import sync  # noqa: E402
from memfs.remotes.configure import add_remote  # noqa: E402

work = Path(tempfile.mkdtemp(prefix="memfs-example-s3-"))
agent = memfs.init(work / "garden", name="garden")
add_remote(agent.history, "origin", "s3://agents/memory/garden")  # stored as memfs::s3://...
print(sync.push(agent).to_dict()["remotes"][0])

copy = memfs.clone("s3://agents/memory/garden", work / "elsewhere")
(copy.root / "system" / "human.md").write_text("Met in the S3 example.\n")
print(sync.sync(copy).remotes[0].pushed)
print(sync.sync(agent).remotes[0].integrated, "->", (agent.root / "system/human.md").read_text())
server.shutdown()

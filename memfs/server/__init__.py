"""``memfs serve``: a self-hosted memory backend over a cloud (issue 13).

The bucket is the truth; a server keeps nothing of its own beyond caches, so several servers
on several machines can serve one cloud behind any load balancer. The package, one concept a
module:

- ``context``: ``ServerContext``, what every route is handed (the cloud, the agent cache, auth).
- ``agents``: ``AgentCache``, every agent of the cloud as a local work tree kept in step with
  the bucket; reads see the bucket's latest push (as of at most ``--fresh-ms`` ago), writes
  are commits pushed with the bucket's compare-and-swap, so servers, watchers and git clients
  interleave without losing a commit.
- ``checkouts``: the cache's checkouts: the lock across threads and processes, opening one
  or cloning it again (damaged, unfinished, a write stopped midway), moving it to a commit.
- ``auth``: the middleware in front of every route: Bearer, Basic ``letta:<token>`` or the
  console's ``memfs_token`` cookie, checked against ``memfs.tokens`` (hashed, constant time).
- ``gitsmart``: git smart HTTP at ``/v1/git/<agent-id or name>/state.git`` (Letta Code's URL);
  ``gitpack`` runs dulwich's protocol handlers over a checkout, ``gitpush`` decides a push
  (checks, then the bucket's compare-and-swap).
- ``lettaapi``: the part of Letta's REST API that reads and writes memory, Letta's paths and JSON.
- ``console``: the web console at ``/``.
- ``app``: the Starlette application that puts them together.
- ``runner``: ``serve()``, what ``memfs serve`` runs: the address rule, uvicorn, signals.

Nothing here is imported by other memfs commands: ``memfs serve`` pays for Starlette alone.
"""

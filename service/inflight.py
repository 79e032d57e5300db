"""Requests in flight, by request id, so the Abort RPC can reach them from any
connection."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from service.errors import InvalidArgument
from service.generation import GenerationJob


class InflightRequests:
    def __init__(self) -> None:
        self._jobs: dict[str, GenerationJob] = {}

    @contextmanager
    def track(self, job: GenerationJob) -> Iterator[None]:
        if job.request_id in self._jobs:
            raise InvalidArgument(
                f"Request id {job.request_id!r} is already in flight.", field="request_id"
            )
        self._jobs[job.request_id] = job
        try:
            yield
        finally:
            self._jobs.pop(job.request_id, None)

    async def abort(self, request_ids: list[str]) -> list[str]:
        """Abort these requests (unknown ids are skipped); return the ones aborted."""
        aborted = []
        for request_id in request_ids:
            job = self._jobs.get(request_id)
            if job is not None:
                await job.abort()
                aborted.append(request_id)
        return aborted

    def __len__(self) -> int:
        return len(self._jobs)

"""AsyncEngine: the asyncio face of an LLMEngine that steps in its own daemon thread.

The event loop only touches a lock-protected inbox (add/abort) and per-request asyncio
queues; forward passes run in the step thread. Each step's outputs reach each event loop
with one call_soon_threadsafe. A consumer that stops iterating (or is cancelled) aborts
its request, which frees its KV blocks on the step thread's next turn."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import structlog

from engine.encoder_cache import EncoderInput
from engine.engine import LLMEngine
from engine.errors import EngineDeadError, RequestAlreadyExists
from engine.outputs import EngineStats, RequestOutput
from engine.sampling_params import SamplingParams

log = structlog.get_logger(__name__)

_Item = RequestOutput | BaseException  # what a request's queue carries
_Delivery = tuple["asyncio.Queue[_Item]", _Item]


@dataclass(frozen=True)
class _Add:
    request_id: str
    prompt_token_ids: list[int]
    params: SamplingParams
    priority: int
    cache_salt: str | None
    encoder_input: EncoderInput | None = None


@dataclass(frozen=True)
class _Abort:
    request_id: str


@dataclass(frozen=True)
class _Stream:
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[_Item]


class AsyncEngine:
    def __init__(self, engine: LLMEngine) -> None:
        self.engine = engine
        self._lock = threading.Lock()
        self._wakeup = threading.Condition(self._lock)
        self._inbox: list[_Add | _Abort] = []  # guarded by _lock
        self._streams: dict[str, _Stream] = {}  # guarded by _lock
        self._stopping = False
        self._dead: BaseException | None = None
        self._failure: BaseException | None = None  # what broke the step loop, if it broke
        self._failure_callbacks: list[Callable[[BaseException], None]] = []  # guarded by _lock
        self._stats = engine.stats()  # snapshot, replaced by the step thread
        self._unstepped = 0  # requests added since that snapshot; guarded by _lock
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        """Start the step thread (idempotent; callable from any thread)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="engine-step", daemon=True)
            self._thread.start()

    def shutdown(self, timeout: float = 30.0) -> None:
        """Stop the step thread after its current step; in-flight requests fail."""
        with self._wakeup:
            self._stopping = True
            self._wakeup.notify()
        if self._thread is not None:
            self._thread.join(timeout)
        self._die(EngineDeadError("the engine was shut down"))

    @property
    def is_dead(self) -> bool:
        return self._dead is not None

    def on_failure(self, callback: Callable[[BaseException], None]) -> None:
        """Call `callback(cause)` once if the step loop fails (not on shutdown), from the
        step thread; at once if it has failed already."""
        with self._lock:
            failure = self._failure
            if failure is None:
                self._failure_callbacks.append(callback)
        if failure is not None:
            callback(failure)

    # -- requests ------------------------------------------------------------------------
    async def generate(
        self,
        request_id: str,
        prompt_token_ids: list[int],
        params: SamplingParams,
        *,
        priority: int = 0,
        cache_salt: str | None = None,
        encoder_input: EncoderInput | None = None,
    ) -> AsyncIterator[RequestOutput]:
        """Outputs of one request as the engine produces them; the last has finished=True.
        `priority` (lower first) needs the "priority" scheduling policy; requests share
        prefix-cached blocks only with requests of the same `cache_salt`.
        Raises InvalidParameter / RequestAlreadyExists / EngineDeadError."""
        command = _Add(
            request_id, list(prompt_token_ids), params, priority, cache_salt, encoder_input
        )
        stream = self._open(command, asyncio.get_running_loop())
        finished = False
        try:
            while not finished:
                item = await stream.queue.get()
                if isinstance(item, BaseException):
                    finished = True  # the engine already dropped the request
                    raise item
                finished = item.finished
                yield item
        finally:
            self._close(request_id, abort=not finished)

    async def abort(self, request_id: str) -> None:
        """Abort a request by id; its stream ends with an ABORT output. Unknown ids: no-op."""
        self._submit(_Abort(request_id))

    def stats(self) -> EngineStats:
        """As of the end of the step thread's last turn."""
        return self._stats

    @property
    def num_queued(self) -> int:
        """Requests waiting: the scheduler's queue as of the last step, plus the requests
        added since (admission control counts these)."""
        with self._lock:
            return self._stats.num_waiting + self._unstepped

    @property
    def max_model_len(self) -> int:
        return self.engine.max_model_len

    @property
    def vocab_size(self) -> int:
        return self.engine.vocab_size

    @property
    def eos_token_ids(self) -> tuple[int, ...]:
        return self.engine.eos_token_ids

    def _open(self, command: _Add, loop: asyncio.AbstractEventLoop) -> _Stream:
        self.engine.validate_request(
            command.request_id,
            command.prompt_token_ids,
            command.params,
            priority=command.priority,
            cache_salt=command.cache_salt,
            encoder_input=command.encoder_input,
        )
        stream = _Stream(loop, asyncio.Queue())
        with self._wakeup:
            if self._dead is not None:
                raise EngineDeadError(f"the engine is not running: {self._dead}") from self._dead
            if command.request_id in self._streams:
                raise RequestAlreadyExists(command.request_id)
            self._streams[command.request_id] = stream
            self._inbox.append(command)
            self._unstepped += 1
            self._wakeup.notify()
        return stream

    def _close(self, request_id: str, abort: bool) -> None:
        with self._wakeup:
            self._streams.pop(request_id, None)
            if abort and self._dead is None:
                self._inbox.append(_Abort(request_id))
                self._wakeup.notify()

    def _submit(self, command: _Add | _Abort) -> None:
        with self._wakeup:
            self._inbox.append(command)
            self._wakeup.notify()

    # -- the step thread -----------------------------------------------------------------
    def _run(self) -> None:
        try:
            while (commands := self._wait_for_work()) is not None:
                items = self._apply(commands)
                if self.engine.has_unfinished_requests():
                    items += [(o.request_id, o) for o in self.engine.step()]
                self.engine.check_no_leaks()
                stats = self.engine.stats()
                with self._lock:
                    self._stats = stats
                    self._unstepped -= sum(isinstance(c, _Add) for c in commands)
                self._publish(items)
        except Exception as exc:  # noqa: BLE001 - every in-flight request learns of it
            log.exception("engine step loop failed", error=repr(exc))
            self._report_failure(exc)  # first: listeners act before the requests fail
            self._die(exc)

    def _wait_for_work(self) -> list[_Add | _Abort] | None:
        """Sleep until there is a command or a request to step; None = shut down."""
        with self._wakeup:
            while not (self._stopping or self._inbox or self.engine.has_unfinished_requests()):
                self._wakeup.wait()
            if self._stopping:
                return None
            commands, self._inbox = self._inbox, []
            return commands

    def _apply(self, commands: list[_Add | _Abort]) -> list[tuple[str, _Item]]:
        items: list[tuple[str, _Item]] = []
        for command in commands:
            if isinstance(command, _Abort):
                output = self.engine.abort_request(command.request_id)
                if output is not None:
                    items.append((command.request_id, output))
                continue
            try:
                self.engine.add_request(
                    command.request_id,
                    command.prompt_token_ids,
                    command.params,
                    priority=command.priority,
                    cache_salt=command.cache_salt,
                    encoder_input=command.encoder_input,
                )
            except ValueError as exc:  # refused (e.g. a duplicate id): that request fails
                items.append((command.request_id, exc))
        return items

    def _publish(self, items: list[tuple[str, _Item]]) -> None:
        """One call_soon_threadsafe per event loop for the whole step."""
        by_loop: dict[asyncio.AbstractEventLoop, list[_Delivery]] = {}
        with self._lock:
            for request_id, item in items:
                stream = self._streams.get(request_id)
                if stream is not None:
                    by_loop.setdefault(stream.loop, []).append((stream.queue, item))
        for loop, deliveries in by_loop.items():
            _call_soon(loop, deliveries)

    def _die(self, cause: BaseException) -> None:
        """Mark the engine dead and fail every stream with EngineDeadError."""
        with self._wakeup:
            if self._dead is None:
                self._dead = cause
            streams = list(self._streams.values())
        by_loop: dict[asyncio.AbstractEventLoop, list[_Delivery]] = {}
        for stream in streams:
            error = EngineDeadError(f"the engine failed: {cause!r}")
            error.__cause__ = cause
            by_loop.setdefault(stream.loop, []).append((stream.queue, error))
        for loop, deliveries in by_loop.items():
            _call_soon(loop, deliveries)

    def _report_failure(self, cause: BaseException) -> None:
        with self._lock:
            self._failure = cause
            callbacks, self._failure_callbacks = self._failure_callbacks, []
        for callback in callbacks:
            try:
                callback(cause)
            except Exception:  # noqa: BLE001 - one broken listener must not hide the others
                log.exception("engine failure callback failed")


def _call_soon(loop: asyncio.AbstractEventLoop, deliveries: list[_Delivery]) -> None:
    try:
        loop.call_soon_threadsafe(_deliver, deliveries)
    except RuntimeError:  # that event loop is closed: nobody is listening
        pass


def _deliver(deliveries: list[_Delivery]) -> None:
    for queue, item in deliveries:
        queue.put_nowait(item)

"""Replaying a request trace through a placement, and scoring its waste.

Chapter 3, "PagedAttention: virtual memory for KV cache". Every request
of the trace arrives at once, so memory, not arrivals, limits how many
run; each step admits waiting requests first come, first served, then
every running request generates one token. Preempted requests resume
before any new one starts, and the newest running request is the one
preempted, as in vLLM. In each step in which a request waits, the
memory is counted in three parts (token slots), after a warm-up:

- state: the prompt and the tokens generated so far, of every running
  request;
- internal fragmentation: slots held by a running request that hold no
  state: reserved for tokens not generated yet (or never, beyond the
  final length), or the unwritten tail of a paged request's last block;
- external fragmentation: all free slots, in a step where they would
  hold the request at the head of the queue in total, but no single
  free extent does.

Waste is (internal + external) / (state + internal + external) summed
over those steps, in %: the share of the memory given out or lost to
fragmentation that holds no state. Free memory too small in total for
the next request is not waste but headroom, and is left out.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from ch03_gpu.paged_allocator import AllocatorError, OutOfBlocksError
from ch03_gpu.placements import StatePlacement
from ch03_gpu.request_trace import Request


class DoesNotFitError(AllocatorError):
    def __init__(self, request: Request, placement: str):
        super().__init__(
            f"request {request.request_id} ({request.total_tokens} tokens)"
            f" does not fit {placement} even alone: shorten it, or give"
            " the state more memory"
        )
        self.request = request


@dataclass
class ReplayResult:
    placement: str
    steps: int = 0
    saturated_steps: int = 0  # tallied steps: some request waited
    state_tokens: int = 0  # the three parts, summed over those steps
    internal_tokens: int = 0
    external_tokens: int = 0
    running_total: int = 0  # running requests, summed over those steps
    peak_running: int = 0
    preemptions: int = 0

    @property
    def waste_pct(self) -> float:
        return self._share(self.internal_tokens + self.external_tokens)

    def _share(self, tokens: int) -> float:
        whole = self.state_tokens + self.internal_tokens
        whole += self.external_tokens
        return 100 * tokens / whole if whole else 0.0

    @property
    def internal_pct(self) -> float:
        return self._share(self.internal_tokens)

    @property
    def external_pct(self) -> float:
        return self._share(self.external_tokens)

    @property
    def mean_running(self) -> float:
        """Requests running at once while memory was the limit."""
        if not self.saturated_steps:
            return 0.0
        return self.running_total / self.saturated_steps


@dataclass
class Active:
    request: Request
    generated: int = 0

    @property
    def tokens(self) -> int:
        return self.request.prompt_tokens + self.generated


def replay(
    trace: Sequence[Request], placement: StatePlacement,
    warmup_steps: int = 0,
) -> ReplayResult:
    """Run `trace` to completion through `placement`; tally its memory.

    The first `warmup_steps` are not tallied: the requests admitted at
    the start all began together, and their lockstep is no steady state.
    """
    for request in trace:
        if not placement.fits_alone(request):
            raise DoesNotFitError(request, placement.name)
    result = ReplayResult(placement.name)
    waiting = deque(trace)
    # Insertion order is admission order: the last one is the newest.
    running: dict[int, Active] = {}
    preempted: deque[Active] = deque()
    state_tokens = 0
    while waiting or running or preempted:
        while preempted and placement.resume(preempted[0].request.request_id):
            active = preempted.popleft()
            running[active.request.request_id] = active
            state_tokens += active.tokens
        while not preempted and waiting and placement.admit(waiting[0]):
            request = waiting.popleft()
            running[request.request_id] = Active(request)
            state_tokens += request.prompt_tokens
        result.steps += 1
        result.peak_running = max(result.peak_running, len(running))
        if (waiting or preempted) and result.steps > warmup_steps:
            held = placement.held_tokens()
            result.saturated_steps += 1
            result.running_total += len(running)
            result.state_tokens += state_tokens
            result.internal_tokens += held - state_tokens
            if waiting and not preempted and (
                placement.split_free_memory(waiting[0])
            ):
                result.external_tokens += placement.free_tokens()
        state_tokens += _decode_step(placement, running, preempted, result)
    return result


def _decode_step(
    placement: StatePlacement,
    running: dict[int, Active],
    preempted: deque[Active],
    result: ReplayResult,
) -> int:
    """One token for every running request; return the state's change.

    A request that has all its tokens leaves at once, so that the
    requests after it in this step can grow into its memory.
    """
    change = 0
    for request_id in list(running):
        active = running.get(request_id)
        if active is None:
            continue  # preempted earlier in this step
        output_tokens = active.request.output_tokens
        while active.generated < output_tokens and request_id in running:
            try:
                placement.grow(request_id)
            except OutOfBlocksError:
                victim_id = next(reversed(running))
                victim = running.pop(victim_id)
                placement.preempt(victim_id, victim.tokens)
                preempted.append(victim)
                change -= victim.tokens
                result.preemptions += 1
                continue
            active.generated += 1
            change += 1
            break
        if active.generated == output_tokens and request_id in running:
            del running[request_id]
            placement.release(request_id)
            change -= active.tokens
    return change

"""Bit planes: the same small circuit for every lane of a bank at once (docs/arithmetic.md §15 "Banks").

A bank of ``n`` identical cells (every input sampler of the net, every neuron of a layer, every
counter of a row) keeps its state *plane by plane*: plane ``i`` is an ``n``-bit value whose bit ``j``
is bit ``i`` of lane ``j``. A circuit written on planes is the per-lane circuit, gate for gate,
applied to all lanes by bitwise operators: a simulator evaluates one wide operation per gate and
clocks one register per plane, instead of one small module per cell. FPGA tools do not map a
plane-wise ripple onto their carry chains, so the banks keep wide arithmetic per lane (§15).

Planes are lists of Amaranth values, least significant bit first, every element ``n`` bits wide.
The helpers that build chains (adders, comparators) take the module and put every intermediate
plane on a net of its own: an expression used twice is otherwise converted twice, and a carry chain
would grow exponentially.
"""

from amaranth.hdl import Cat, Const, Signal, Value


def net(m, value, name: str) -> Signal:
    """``value`` on a named net of its own (combinational). The net is kept by name in the Verilog
    (``keep``): otherwise a net that is only wiring, such as a plane gathered from a lane-major bus,
    is dissolved and its 784-bit concatenation written out again at every reader."""
    s = Signal(len(value), name=name, attrs={"keep": 1})
    m.d.comb += s.eq(value)
    return s


def planes_of(lanes, n: int, width: int, m=None, name: str = "plane") -> list:
    """Planes of a lane-major value (lane ``j`` in bits ``[j*width, (j+1)*width)``); with ``m``, each
    on a named net of its own (:func:`net`)."""
    v = Value.cast(lanes)
    planes = [Cat(*[v[j * width + i] for j in range(n)]) for i in range(width)]
    return planes if m is None else [net(m, p, f"{name}{i}") for i, p in enumerate(planes)]


def lanes_of(planes: list, n: int) -> Value:
    """The lane-major value of ``planes`` (the inverse of :func:`planes_of`)."""
    return Cat(*[p[j] for j in range(n) for p in planes])


def const_planes(value: int, width: int, n: int) -> list:
    """Planes of the same ``width``-bit constant in every lane (two's complement for negatives)."""
    ones = (1 << n) - 1
    return [Const(ones if (value >> i) & 1 else 0, n) for i in range(width)]


def less_than(m, a: list, b: list, n: int, name: str = "lt") -> Value:
    """Per lane ``a < b`` for unsigned plane lists (the shorter one zero-extended)."""
    width = max(len(a), len(b))
    zero = Const(0, n)
    a = list(a) + [zero] * (width - len(a))
    b = list(b) + [zero] * (width - len(b))
    lt = zero
    for i, (ai, bi) in enumerate(zip(a, b)):  # from the least significant bit: a higher differing bit decides
        lt = net(m, (~ai & bi) | (~(ai ^ bi) & lt), f"{name}{i}")
    return lt


def any_set(planes: list) -> Value:
    """Per lane: some plane has its bit set (the lane's value is nonzero)."""
    out = planes[0]
    for p in planes[1:]:
        out = out | p
    return out


def all_set(planes: list) -> Value:
    """Per lane: every plane has its bit set."""
    out = planes[0]
    for p in planes[1:]:
        out = out & p
    return out

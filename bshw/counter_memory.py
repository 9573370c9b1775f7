"""A layer's gradient counters in synchronous-read memory, walked row by row (docs/arithmetic.md §9,
§15 "Counter memory").

The ``fan_in x fan_out`` counters of a layer are stored one crossbar row per memory word, split by
column groups into ``fan_out / bank_cols`` banks (``lib.memory.Memory`` with a synchronous read port,
so synthesis maps each bank to block RAM). A two-stage pipeline walks the rows, one row per clock:

- stage 1 presents the row address to every bank (and clears the row from the pending set);
- stage 2 receives the row's counters, applies the §9 rule to every column at once
  (:func:`bshw.periodic_carry.counter_planes`, bit-sliced) and writes the row back.

A bank word holds its columns' counters *plane-major* (bit i of every column together, §15
"Banks"), the form the bit-sliced rule reads and writes; the host port sees them column by column.

Consecutive rows are distinct, so a write never meets a read of the same row. **Accumulate** walks
only the rows whose input bit ``x_i`` is 1 (a row with ``x_i = 0`` adds nothing, §9), and no row at all
when the layer's error ``dy`` is all zero; **carry** walks every row and sends each row's weight
steps to the crossbar macro's update pins (bshw/macro.py) in stage 2.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from bshw import bitslice as bs
from bshw.core import check_int
from bshw.periodic_carry import _pack_rows, check_counter, counter_planes

# the pending-row search is two-level (a group of rows, then a row in it) to keep its logic depth
# logarithmic in fan_in instead of one fan_in-long priority chain
GROUP = 32


def lowest_set(m: Module, bits, name: str):
    """``(index of the lowest set bit of bits, any bit set)`` as combinational signals."""
    index = Signal(range(max(len(bits), 2)), name=f"{name}_index")
    for i in reversed(range(len(bits))):  # later assignments win: the lowest set bit is last
        with m.If(bits[i]):
            m.d.comb += index.eq(i)
    return index, bits.any()


def plane_major(values, bits: int) -> int:
    """One memory word of ``values`` (unsigned ``bits``-bit fields) stored plane-major: bit ``i`` of
    value ``j`` at bit ``i * len(values) + j``."""
    n = len(values)
    return sum(((v >> i) & 1) << (i * n + j) for j, v in enumerate(values) for i in range(bits))


def default_bank_cols(fan_out: int, counter_bits: int, max_bits: int = 256) -> int:
    """The widest column group that divides ``fan_out`` and fits ``max_bits`` per word (at least 1)."""
    best = 1
    for c in range(1, fan_out + 1):
        if fan_out % c == 0 and c * counter_bits <= max_bits:
            best = c
    return best


class CounterMemory(wiring.Component):
    """Counters of one layer in banked synchronous memory, with the accumulate / carry row walker (§9).

    Parameters
    ----------
    fan_in, fan_out : int
        Rows (inputs of the layer) and columns (neurons), each >= 1.
    th, counter_bits : int
        Carry threshold and counter width (§9, §12).
    bank_cols : int or None
        Columns per memory bank; must divide ``fan_out``. None: :func:`default_bank_cols`.
    init : list of list of int or None
        Initial counters ``[fan_in][fan_out]`` (None: all zero, §10).

    Attributes
    ----------
    acc_start, carry_start : In(1)
        Start a walk (one clock, while not ``busy``): accumulate ``x (outer) dy`` into the rows with
        ``x_i = 1`` (none when ``dy`` is all zero), or carry every row.
    x : In(fan_in)
        The layer's binary inputs of the sample, held during an accumulate walk.
    dy_en, dy_neg : In(fan_out)
        The layer's ternary error on the §7 wire code, held during an accumulate walk.
    busy : Out(1)
        A walk is running.
    upd, upd_row, pot, dep : Out
        Carry stage 2: the row's potentiation / depression pulses for the crossbar macro.
    host_row : In(range(fan_in)), host_we : In(1), host_wdata : In(ArrayLayout(signed(cb), fan_out))
        Host write of a row (while not busy).
    host_re : In(1), host_rdata : Out(ArrayLayout(signed(cb), fan_out))
        Host read: ``host_rdata`` holds row ``host_row`` from the second clock after ``host_re``.
    """

    def __init__(self, fan_in: int, fan_out: int, th: int, counter_bits: int, *, bank_cols=None, init=None):
        self._MustUse__silence = True  # until built: a refused memory is not an unused one
        self.fan_in = check_int("fan_in", fan_in, 1)
        self.fan_out = check_int("fan_out", fan_out, 1)
        self.cmin, self.cmax = check_counter(th, counter_bits)
        self.th, self.counter_bits = th, counter_bits
        if bank_cols is None:
            bank_cols = default_bank_cols(fan_out, counter_bits)
        self.bank_cols = check_int("bank_cols", bank_cols, 1, fan_out)
        if fan_out % bank_cols:
            raise ValueError(f"bank_cols={bank_cols} does not divide the row of {fan_out} counters")
        self.n_banks = fan_out // bank_cols
        words = _pack_rows(init, fan_in, fan_out, counter_bits, self.cmin, self.cmax, "counter")
        cmask = (1 << counter_bits) - 1
        self.bank_init = [[plane_major([(wd >> ((b * bank_cols + j) * counter_bits)) & cmask for j in range(bank_cols)],
                                       counter_bits) for wd in words] for b in range(self.n_banks)]
        row = data.ArrayLayout(unsigned(counter_bits), fan_out)
        rr = range(max(fan_in, 2))
        super().__init__({
            "acc_start": In(1), "carry_start": In(1), "x": In(fan_in), "dy_en": In(fan_out), "dy_neg": In(fan_out),
            "busy": Out(1), "upd": Out(1), "upd_row": Out(rr), "pot": Out(fan_out), "dep": Out(fan_out),
            "host_row": In(rr), "host_we": In(1), "host_wdata": In(row), "host_re": In(1), "host_rdata": Out(row),
        })
        self._MustUse__silence = False

    def elaborate(self, platform):
        m = Module()
        fi, fo, cb, bc = self.fan_in, self.fan_out, self.counter_bits, self.bank_cols
        rr = range(max(fi, 2))

        # -- stage 1: pick the next pending row (lowest index first) -----------------------------------
        pending = Signal(fi)
        carrying = Signal()  # the running walk is a carry
        n_groups = (fi + GROUP - 1) // GROUP
        groups = [pending[g * GROUP:min((g + 1) * GROUP, fi)] for g in range(n_groups)]
        group_any = Signal(n_groups)
        m.d.comb += group_any.eq(Cat(*[g.any() for g in groups]))
        group, issue = lowest_set(m, group_any, "group")  # issue: some row is pending
        word = Signal(GROUP)
        m.d.comb += word.eq(pending.word_select(group, GROUP) if fi > GROUP else pending)
        in_group, _ = lowest_set(m, word, "row")
        pick = Signal(rr)
        m.d.comb += pick.eq(group * GROUP + in_group if fi > GROUP else in_group)
        onehot = Signal(fi)  # the picked row as a one-hot mask: pending's lowest set bit
        m.d.comb += onehot.eq(Const(1, fi) << pick)

        s2_valid = Signal()
        s2_row = Signal(rr)
        m.d.sync += s2_valid.eq(0)
        with m.If(self.acc_start):  # §9: rows with x_i = 0, or an error of all zeros, add nothing
            m.d.sync += [pending.eq(Mux(self.dy_en.any(), self.x, 0)), carrying.eq(0)]
        with m.Elif(self.carry_start):  # §9 carry: every row
            m.d.sync += [pending.eq(Const((1 << fi) - 1, fi)), carrying.eq(1)]
        with m.Elif(issue):
            m.d.sync += [pending.eq(pending & ~onehot), s2_valid.eq(1), s2_row.eq(pick)]
        m.d.comb += self.busy.eq(pending.any() | s2_valid)

        # -- the banks: one synchronous read port (walker or host) and one write port each ---------------
        host_re_d = Signal()
        m.d.sync += host_re_d.eq(self.host_re)
        rd_row = Mux(issue, pick, self.host_row)
        wr_data = []
        for b in range(self.n_banks):
            mem = Memory(shape=unsigned(bc * cb), depth=fi, init=self.bank_init[b])
            m.submodules[f"bank{b}"] = mem
            rd, wr = mem.read_port(), mem.write_port()
            m.d.comb += rd.addr.eq(rd_row)
            wr_data.append((rd, wr))

        # -- stage 2: the §9 rule on the row read (bit-sliced over the columns), written back ---------
        # plane i of the row: bit i of every column, bank by bank (each bank word is plane-major)
        cur = [Cat(*[rd.data[i * bc:(i + 1) * bc] for rd, _ in wr_data]) for i in range(cb)]
        acc, carry = Signal(), Signal()
        m.d.comb += [acc.eq(s2_valid & ~carrying), carry.eq(s2_valid & carrying)]
        # §9: only rows with x_i = 1 are walked, so the gradient of a column is its dy
        nxt, up, down = counter_planes(m, [bs.net(m, p, f"row_bit{i}") for i, p in enumerate(cur)], self.dy_en,
                                       self.dy_neg, acc, carry, self.th, cb, fo)
        m.d.comb += [self.upd.eq(carry), self.upd_row.eq(s2_row), self.pot.eq(up & carry.replicate(fo)),
                     self.dep.eq(down & carry.replicate(fo))]
        # the host port is column-major: transposed here, only where the host reads or writes
        host_w = bs.planes_of(self.host_wdata, fo, cb)
        for b, (rd, wr) in enumerate(wr_data):
            cols = slice(b * bc, (b + 1) * bc)
            m.d.comb += [wr.addr.eq(Mux(s2_valid, s2_row, self.host_row)),
                         wr.en.eq(Mux(s2_valid, 1, self.host_we)),
                         wr.data.eq(Mux(s2_valid, Cat(*[p[cols] for p in nxt]), Cat(*[p[cols] for p in host_w])))]
        # a host read keeps the plane-major row in a register; the transposition to columns then
        # changes only when the host reads, not at every row of a walk
        raw = Signal(cb * fo, name="host_row_planes")
        with m.If(host_re_d):
            m.d.sync += raw.eq(Cat(*cur))
        m.d.comb += self.host_rdata.eq(bs.lanes_of([raw[i * fo:(i + 1) * fo] for i in range(cb)], fo))
        self._stage2 = (s2_valid, carrying, [wr for _, wr in wr_data])  # for fault injection (bshw/sim/mutations.py)
        return m

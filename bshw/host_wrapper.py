"""A host-facing wrapper of the periphery: sample and result streams, and a Wishbone register file
for the host operations (issue 20).

:class:`BshwHostWrapper` instantiates the periphery module (bshw/periphery.py, emitted beside it by
``bshw rtl``) and passes its crossbar-macro interfaces (and probes, if any) through unchanged. It
replaces the periphery's transaction and host ports with:

- ``samples``: an input ``amaranth.lib.stream`` of samples (payload :meth:`sample_layout`: ``pixels``,
  ``label``, ``op``). A sample is accepted (``ready``) only while no operation runs, no result waits
  for the sink and no Wishbone access waits for the periphery's host ports; its operation starts the
  clock after it is accepted.
- ``results``: an output stream with one result per accepted sample, in order (payload
  :meth:`result_layout`: ``pred``, ``op``, ``seq``, the low bits of the sample's number). A result
  holds (``valid``) until the sink takes it; no new sample is accepted meanwhile. An operation
  started from the registers (``CMD`` START) gives no stream result: its class is in ``RESULT``
  and ``STATUS.DONE`` rises when it ends.
- ``wb``: a Wishbone B4 classic slave (:class:`WishboneSignature`, 32-bit data, word addresses) on the
  register map :data:`REGISTERS` (also the source of the generated table, :func:`register_table`).

The protocol wrapped is the periphery's transaction and host-port protocol of docs/arithmetic.md §15
("Sequencer and clocks per operation", "Host ports"): ``start`` for one clock with ``op`` in IDLE,
``done`` for the operation's last clock, and the host ports (row write/read with ``mem_rvalid``, LFSR
load/read) only while the periphery is not busy.

**Host ports while busy: the wrapper stalls.** A Wishbone access that uses the periphery's host
ports (a ``CMD`` row write/read or ``START``, an ``LFSR_DATA`` read or write) is not acknowledged
until no operation runs; while it waits, no new sample is accepted, so the wait is at most the one
operation in flight. Every other register answers at once, also during an operation.

Row data goes through word windows: ``ROW_LAYER``/``ROW_INDEX`` address a row, ``WIDX`` is a word
index that every access to a window (``LEVELS``, ``COUNTERS``, ``PIXELS``) advances by one, and
``CMD`` writes the row buffers into the row (``WRITE_LEVELS``, ``WRITE_COUNTERS``) or reads the row
into both buffers (``READ_ROW``, acknowledged once the data is in them). Column j of a row is bits
``[j*b, (j+1)*b)`` of the buffer, word w its bits ``[32w, 32w+32)`` (the periphery's packing).
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import (
    Cat,
    ClockSignal,
    Const,
    Instance,
    Module,
    Mux,
    ResetSignal,
    Signal,
    Value,
)
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from bshw.periphery import Op
from bshw.system import flat_value

# the periphery's ports the wrapper drives or reads itself (docs/arithmetic.md §15); every other member
# (the crossbar-macro interfaces, the probes) is passed through
HOST_PORTS = ("start", "op", "busy", "done", "pixels", "label", "pred", "host")  # host: bshw.periphery.HostSignature

ID_VALUE = 0x42534877  # ASCII "BSHw"
DATA_WIDTH = 32
ADDR_WIDTH = 6  # word addresses 0..63: the map below uses 0..15, the rest reads 0


class Cmd:
    """Codes of the ``CMD`` register's bits [3:0] (``START`` takes the operation in bits [5:4])."""

    NOP = 0
    WRITE_LEVELS = 1
    WRITE_COUNTERS = 2
    READ_ROW = 3
    START = 4


class Status:
    """Bits of the ``STATUS`` register."""

    BUSY = 0  # an operation is issued or runs
    RESULT_PENDING = 1  # a result waits for the result stream's sink
    DONE = 2  # the last operation started from CMD has finished (cleared by the next START)
    ERR_CMD = 3  # sticky: an unknown CMD code was written
    ERR_RANGE = 4  # sticky: a row, layer, LFSR stream or window word out of range (the access did nothing)
    ERRORS = (1 << ERR_CMD) | (1 << ERR_RANGE)


@dataclass(frozen=True)
class Register:
    """One register of the map.

    ``access``: ``R`` read-only (writes ignored); ``RW`` read/write storage (``sel`` byte lanes
    honoured); ``W`` write-only trigger (reads 0, ``sel`` ignored); ``R/W1C`` read, writing 1 clears
    those bits; ``RW+`` a window on a buffer word at ``WIDX`` (every access, read or write, advances
    ``WIDX``); ``RW!`` a periphery host port (stalled while an operation runs). ``reset``: an integer,
    or the name of a property of the wrapper (a design-dependent constant)."""

    addr: int
    name: str
    access: str
    reset: int | str
    meaning: str


REGISTERS = (
    Register(0x0, "ID", "R", ID_VALUE, "identification, 0x42534877 (ASCII \"BSHw\")"),
    Register(0x1, "SHAPE", "R", "shape_word", "[15:0] words per row of levels (`LEVELS` window), "
             "[31:16] words per row of counters (`COUNTERS` window)"),
    Register(0x2, "STATUS", "R/W1C", 0, "[0] BUSY: an operation is issued or runs; [1] RESULT_PENDING: a "
             "result waits for the result stream's sink; [2] DONE: the last operation started by `CMD` has "
             "finished; [3] ERR_CMD (sticky): unknown `CMD` code; [4] ERR_RANGE (sticky): row, layer, stream "
             "or window word out of range, the access did nothing. Write 1 to bits 3/4 to clear them"),
    Register(0x3, "CMD", "W", 0, "[3:0] 1 WRITE_LEVELS (the `LEVELS` buffer into row `ROW_INDEX` of "
             "`ROW_LAYER`), 2 WRITE_COUNTERS (the `COUNTERS` buffer), 3 READ_ROW (levels and counters of the "
             "row into both buffers; acknowledged when they hold it), 4 START (operation [5:4]: 0 TRAIN, "
             "1 CARRY, 2 INFER, 3 BINARY, on `PIXELS` and `LABEL`); stalled while an operation runs"),
    Register(0x4, "RESULT", "R", 0, "the last finished operation (either source): [15:0] pred, [17:16] op, "
             "[18] 1 = started by `CMD`, 0 = by the sample stream"),
    Register(0x5, "ROW_LAYER", "RW", 0, "[7:0] layer of the addressed row (0-based)"),
    Register(0x6, "ROW_INDEX", "RW", 0, "[15:0] row (input index) in that layer"),
    Register(0x7, "WIDX", "RW", 0, "[15:0] word index into the windows; every window access adds 1"),
    Register(0x8, "LEVELS", "RW+", 0, "word `WIDX` of the row buffer of levels (column j at bits "
             "[j*wbits, (j+1)*wbits) of the row)"),
    Register(0x9, "COUNTERS", "RW+", 0, "word `WIDX` of the row buffer of counters (column j at bits "
             "[j*counter_bits, (j+1)*counter_bits))"),
    Register(0xA, "PIXELS", "RW+", 0, "word `WIDX` of the sample's pixels (pixel i at bits [8i, 8i+8)); "
             "also loaded by every sample the stream delivers"),
    Register(0xB, "LABEL", "RW", 0, "[15:0] the sample's label; also loaded by every streamed sample"),
    Register(0xC, "LFSR_SEL", "RW", 0, "[15:0] LFSR stream (pixels, then the neurons layer by layer)"),
    Register(0xD, "LFSR_DATA", "RW!", 0, "read: the selected stream's state; write: load it "
             "(stalled while an operation runs)"),
    Register(0xE, "COUNT", "R", 0, "[15:0] samples accepted from the stream, [31:16] results taken by its sink"),
    Register(0xF, "SHAPE2", "R", "shape2_word", "[15:0] words of `PIXELS`, [31:16] LFSR streams"),
)
REG = {r.name: r for r in REGISTERS}
# the registers BshwHostWrapper.elaborate decodes (checked against REGISTERS when it elaborates)
_HANDLED = {"ID", "SHAPE", "STATUS", "CMD", "RESULT", "ROW_LAYER", "ROW_INDEX", "WIDX", "LEVELS", "COUNTERS", "PIXELS",
            "LABEL", "LFSR_SEL", "LFSR_DATA", "COUNT", "SHAPE2"}


class WishboneSignature(wiring.Signature):
    """Wishbone B4 classic bus, seen from the initiator (master): ``Out`` members are driven by the
    master. A slave port is ``In(WishboneSignature(...))``.

    Parameters
    ----------
    addr_width : int
        Bits of ``adr`` (a word address: granularity and port size are ``data_width``).
    data_width : int
        Bits of ``dat_w``/``dat_r``: 8, 16, 32 or 64; ``sel`` has one bit per byte.
    """

    def __init__(self, addr_width: int, data_width: int = DATA_WIDTH):
        if isinstance(addr_width, bool) or not isinstance(addr_width, int):
            raise TypeError(f"addr_width must be an integer, got {addr_width!r}")
        if not 1 <= addr_width <= 32:
            raise ValueError(f"addr_width must be 1..32, got {addr_width}")
        if data_width not in (8, 16, 32, 64):
            raise ValueError(f"data_width must be 8, 16, 32 or 64, got {data_width!r}")
        self.addr_width, self.data_width = addr_width, data_width
        super().__init__({"adr": Out(addr_width), "dat_w": Out(data_width), "dat_r": In(data_width),
                          "sel": Out(data_width // 8), "cyc": Out(1), "stb": Out(1), "we": Out(1), "ack": In(1)})

    def __eq__(self, other):
        return (isinstance(other, WishboneSignature) and (self.addr_width, self.data_width)
                == (other.addr_width, other.data_width))

    def __repr__(self):
        return f"WishboneSignature({self.addr_width}, {self.data_width})"


def sample_layout(n_inputs: int, label_shape) -> data.StructLayout:
    """Payload of the sample stream: ``pixels`` (``n_inputs`` bytes, pixel i at bits [8i, 8i+8)), then
    ``label`` (the periphery's label shape), then ``op`` (:class:`bshw.periphery.Op`, 2 bits)."""
    return data.StructLayout({"pixels": data.ArrayLayout(8, n_inputs), "label": label_shape, "op": Op})


def result_layout(pred_shape) -> data.StructLayout:
    """Payload of the result stream: ``pred`` (the periphery's class after the operation, meaningful for
    INFER and BINARY), ``op`` (the sample's), ``seq`` (the sample's number from reset, modulo 256)."""
    return data.StructLayout({"pred": pred_shape, "op": Op, "seq": 8})


def _words(bits: int) -> int:
    return max(1, -(-bits // DATA_WIDTH))


class BshwHostWrapper(wiring.Component):
    """Sample/result streams and a Wishbone register file around the periphery (module docstring).

    Parameters
    ----------
    periphery : bshw.periphery.BshwPeriphery
        The periphery whose module the wrapper instantiates (its ports and widths).
    periphery_name : str
        The periphery's Verilog module name (``bshw rtl`` emits it beside the wrapper).
    addr_width : int
        Bits of the Wishbone word address (>= 4: the map uses words 0..15; unmapped words read 0,
        writes to them are ignored).

    Raises
    ------
    TypeError
        ``periphery`` is not a periphery component, or a parameter has the wrong type.
    ValueError
        ``periphery_name`` is not a Verilog identifier, or ``addr_width`` is out of range.
    """

    def __init__(self, periphery, periphery_name: str = "bshw_periphery", *, addr_width: int = ADDR_WIDTH):
        try:
            self._check(periphery, periphery_name, addr_width)
        except (TypeError, ValueError):
            self._MustUse__silence = True  # a refused wrapper is not an unused one
            raise
        members = periphery.signature.members
        self.periphery, self.periphery_name, self.addr_width = periphery, periphery_name, addr_width
        self.sizes, self.L, self.macros = list(periphery.sizes), periphery.L, periphery.macros
        self.params = getattr(periphery, "params", {})
        host = members["host"].signature.members  # as the periphery sees them (bshw.periphery.HostSignature)
        self.w_row_bits = len(Value.cast(Signal(host["mem_wdata_w"].shape)))
        self.c_row_bits = len(Value.cast(Signal(host["mem_wdata_c"].shape)))
        self.w_words, self.c_words = _words(self.w_row_bits), _words(self.c_row_bits)
        self.pix_words = _words(8 * self.sizes[0])
        self.n_streams = sum(self.sizes)
        self.label_shape = members["label"].shape
        self.pred_shape = members["pred"].shape
        sig = {"samples": In(stream.Signature(self.sample_layout())),
               "results": Out(stream.Signature(self.result_layout())),
               "wb": In(WishboneSignature(addr_width))}
        for name, member in members.items():
            if name not in HOST_PORTS:
                sig[name] = member
        super().__init__(sig)

    @staticmethod
    def _check(periphery, periphery_name, addr_width):
        members = getattr(getattr(periphery, "signature", None), "members", None)
        if members is None or any(p not in members for p in HOST_PORTS) or not hasattr(periphery, "macros"):
            raise TypeError(f"periphery must be a bshw.periphery.BshwPeriphery, got {type(periphery).__name__}")
        if not isinstance(periphery_name, str):
            raise TypeError(f"periphery_name must be a string, got {type(periphery_name).__name__}")
        if not periphery_name or not periphery_name.replace("_", "a").isalnum() or periphery_name[0].isdigit():
            raise ValueError(f"periphery_name {periphery_name!r}: letters, digits and _, not starting with a digit")
        if isinstance(addr_width, bool) or not isinstance(addr_width, int):
            raise TypeError(f"addr_width must be an integer, got {addr_width!r}")
        need = max(r.addr for r in REGISTERS).bit_length()
        if not need <= addr_width <= 30:
            raise ValueError(f"addr_width must be {need}..30 (the register map uses words up to "
                             f"{max(r.addr for r in REGISTERS):#x}), got {addr_width}")

    # -- layouts and constants (also read by the bench and the register table) ----------------------
    def sample_layout(self) -> data.StructLayout:
        """Payload of the sample stream (:func:`sample_layout`)."""
        return sample_layout(self.sizes[0], self.label_shape)

    def result_layout(self) -> data.StructLayout:
        """Payload of the result stream (:func:`result_layout`)."""
        return result_layout(self.pred_shape)

    @property
    def shape_word(self) -> int:
        return self.w_words | (self.c_words << 16)

    @property
    def shape2_word(self) -> int:
        return self.pix_words | (self.n_streams << 16)

    def reset_value(self, reg: Register) -> int:
        return getattr(self, reg.reset) if isinstance(reg.reset, str) else reg.reset

    def elaborate(self, platform):
        m = Module()
        # the periphery's transaction ports and its host sub-interface (Verilog host__<name>), by name
        top = self.periphery.signature.members
        per_sig = {name: top[name] for name in HOST_PORTS if name != "host"}
        per_sig.update({f"host__{name}": member for name, member in top["host"].signature.members.items()})
        per = {name.removeprefix("host__"): Signal(member.shape, name=f"per_{name}") for name, member in per_sig.items()}
        ports = {"i_clk": ClockSignal(), "i_rst": ResetSignal()}
        for name, member in per_sig.items():
            ports[("i_" if member.flow == In else "o_") + name] = flat_value(per[name.removeprefix("host__")])
        for name, member in self.signature.members.items():
            if name in ("samples", "results", "wb"):
                continue
            if member.is_signature:
                for path, sub, value in member.signature.flatten(getattr(self, name)):
                    pname = "__".join(map(str, (name, *path)))
                    ports[("o_" if sub.flow == Out else "i_") + pname] = flat_value(value)
            else:
                ports[("o_" if member.flow == Out else "i_") + name] = flat_value(getattr(self, name))
        m.submodules.periphery = Instance(self.periphery_name, **ports)
        unhandled = sorted(set(REG) - _HANDLED)
        if unhandled:  # the map and the decoder below must agree: a register without logic is an error
            raise RuntimeError(f"host wrapper: registers {', '.join(unhandled)} of REGISTERS have no logic")

        wb, smp, res = self.wb, self.samples, self.results
        sizes, L = self.sizes, self.L

        # -- registers -----------------------------------------------------------------------------
        row_layer = Signal(8, init=REG["ROW_LAYER"].reset)
        row_index = Signal(16, init=REG["ROW_INDEX"].reset)
        widx = Signal(16, init=REG["WIDX"].reset)
        label = Signal(16, init=REG["LABEL"].reset)
        lfsr_sel = Signal(16, init=REG["LFSR_SEL"].reset)
        buf_w = Signal(32 * self.w_words)
        buf_c = Signal(32 * self.c_words)
        pix = Signal(32 * self.pix_words)
        err_cmd, err_range, done_flag = Signal(), Signal(), Signal()
        n_in, n_out = Signal(16), Signal(16)
        result = Signal(32)

        # -- operation engine: one operation issued at a time, from the stream or from CMD -----------
        running = Signal()  # from the clock after a sample/START is taken to the end of its done clock
        go = Signal()  # the periphery's start pulse (the clock after the sample is taken)
        op_reg = Signal(Op)
        from_cmd = Signal()
        res_valid = Signal()
        res_payload = Signal(self.result_layout())
        pred16 = Signal(16)
        m.d.comb += pred16.eq(per["pred"])
        m.d.sync += go.eq(0)
        m.d.comb += [per["start"].eq(go), per["op"].eq(op_reg), per["pixels"].eq(pix[:8 * sizes[0]]),
                     per["label"].eq(label), per["mem_layer"].eq(row_layer), per["mem_row"].eq(row_index),
                     per["mem_wdata_w"].eq(buf_w[:self.w_row_bits]), per["mem_wdata_c"].eq(buf_c[:self.c_row_bits]),
                     per["lfsr_sel"].eq(lfsr_sel), per["lfsr_wdata"].eq(wb.dat_w)]

        with m.If(per["done"]):
            m.d.sync += [running.eq(0), result.eq(Cat(pred16, op_reg, from_cmd))]
            with m.If(from_cmd):
                m.d.sync += done_flag.eq(1)
            with m.Else():
                m.d.sync += [res_valid.eq(1), res_payload.pred.eq(per["pred"]), res_payload.op.eq(op_reg),
                             res_payload.seq.eq(n_in - 1)]
        m.d.comb += [res.valid.eq(res_valid), res.payload.eq(res_payload)]
        with m.If(res.valid & res.ready):
            m.d.sync += [res_valid.eq(0), n_out.eq(n_out + 1)]

        # -- Wishbone slave --------------------------------------------------------------------------
        ack = Signal()
        dat_r = Signal(32)
        m.d.comb += [wb.ack.eq(ack), wb.dat_r.eq(dat_r)]
        m.d.sync += ack.eq(0)
        req = wb.cyc & wb.stb & ~ack
        mask = Cat(*[wb.sel[i].replicate(8) for i in range(4)])

        def merged(old):
            """``old`` with the written byte lanes (``sel``) of ``dat_w``."""
            w = len(old)
            return ((old & ~mask[:w]) | (wb.dat_w[:w] & mask[:w]))[:w]

        code = wb.dat_w[:4]
        host_access = ((wb.adr == REG["CMD"].addr) & wb.we & (code >= Cmd.WRITE_LEVELS) & (code <= Cmd.START)) | \
            (wb.adr == REG["LFSR_DATA"].addr)
        hold = Signal()  # a Wishbone access waits for, or uses, the periphery: no sample is taken
        rows_of_layer = Const(sizes[0], 16)  # fan-in of the addressed layer
        for li in range(1, L):
            rows_of_layer = Mux(row_layer == li, sizes[li], rows_of_layer)
        row_ok = (row_layer < L) & (row_index < rows_of_layer)
        stream_ok = lfsr_sel < self.n_streams

        def window(buf, nwords):
            idx = widx[:max(1, (nwords - 1).bit_length())]
            word = buf.word_select(idx, 32)
            with m.If(widx < nwords):
                with m.If(wb.we):
                    m.d.sync += word.eq(merged(word))
                with m.Else():
                    m.d.sync += dat_r.eq(word)
                m.d.sync += widx.eq(widx + 1)
            with m.Else():
                m.d.sync += err_range.eq(1)

        with m.FSM(init="IDLE"):
            with m.State("IDLE"):
                m.d.comb += hold.eq(req & host_access)
                with m.If(req & ~(host_access & running)):
                    m.d.sync += [ack.eq(1), dat_r.eq(0)]
                    with m.Switch(wb.adr):
                        with m.Case(REG["ID"].addr):
                            m.d.sync += dat_r.eq(ID_VALUE)
                        with m.Case(REG["SHAPE"].addr):
                            m.d.sync += dat_r.eq(self.shape_word)
                        with m.Case(REG["SHAPE2"].addr):
                            m.d.sync += dat_r.eq(self.shape2_word)
                        with m.Case(REG["STATUS"].addr):
                            with m.If(wb.we):
                                with m.If(wb.sel[0] & wb.dat_w[Status.ERR_CMD]):
                                    m.d.sync += err_cmd.eq(0)
                                with m.If(wb.sel[0] & wb.dat_w[Status.ERR_RANGE]):
                                    m.d.sync += err_range.eq(0)
                            with m.Else():
                                m.d.sync += dat_r.eq(Cat(running, res_valid, done_flag, err_cmd, err_range))
                        with m.Case(REG["CMD"].addr):
                            with m.If(wb.we):
                                with m.Switch(code):
                                    with m.Case(Cmd.NOP):
                                        pass
                                    with m.Case(Cmd.WRITE_LEVELS, Cmd.WRITE_COUNTERS):
                                        with m.If(row_ok):
                                            m.d.comb += [per["mem_we_w"].eq(code == Cmd.WRITE_LEVELS),
                                                         per["mem_we_c"].eq(code == Cmd.WRITE_COUNTERS)]
                                        with m.Else():
                                            m.d.sync += err_range.eq(1)
                                    with m.Case(Cmd.READ_ROW):
                                        with m.If(row_ok):
                                            m.d.comb += per["mem_re"].eq(1)
                                            m.d.sync += ack.eq(0)  # acknowledged when the row is in the buffers
                                            m.next = "READ"
                                        with m.Else():
                                            m.d.sync += err_range.eq(1)
                                    with m.Case(Cmd.START):
                                        m.d.sync += [go.eq(1), running.eq(1), op_reg.eq(wb.dat_w[4:6]),
                                                     from_cmd.eq(1), done_flag.eq(0)]
                                    with m.Default():
                                        m.d.sync += err_cmd.eq(1)
                        with m.Case(REG["RESULT"].addr):
                            m.d.sync += dat_r.eq(result)
                        for name, reg in (("ROW_LAYER", row_layer), ("ROW_INDEX", row_index), ("WIDX", widx),
                                          ("LABEL", label), ("LFSR_SEL", lfsr_sel)):
                            with m.Case(REG[name].addr):
                                with m.If(wb.we):
                                    m.d.sync += reg.eq(merged(reg))
                                with m.Else():
                                    m.d.sync += dat_r.eq(reg)
                        with m.Case(REG["LEVELS"].addr):
                            window(buf_w, self.w_words)
                        with m.Case(REG["COUNTERS"].addr):
                            window(buf_c, self.c_words)
                        with m.Case(REG["PIXELS"].addr):
                            window(pix, self.pix_words)
                        with m.Case(REG["LFSR_DATA"].addr):
                            with m.If(~stream_ok):
                                m.d.sync += err_range.eq(1)
                            with m.Elif(wb.we):
                                m.d.comb += per["lfsr_we"].eq(1)
                            with m.Else():
                                m.d.sync += dat_r.eq(per["lfsr_rdata"])
                        with m.Case(REG["COUNT"].addr):
                            m.d.sync += dat_r.eq(Cat(n_in, n_out))
            with m.State("READ"):  # READ_ROW: wait for mem_rvalid, then acknowledge
                m.d.comb += hold.eq(1)
                with m.If(per["mem_rvalid"]):
                    m.d.sync += [buf_w.eq(per["mem_rdata_w"]), buf_c.eq(per["mem_rdata_c"]), ack.eq(1)]
                    m.next = "IDLE"

        # -- the sample stream: taken only when nothing runs, no result waits and the bus is not waiting
        m.d.comb += smp.ready.eq(~running & ~res_valid & ~hold)
        with m.If(smp.valid & smp.ready):
            m.d.sync += [pix.eq(smp.payload.pixels), label.eq(smp.payload.label), op_reg.eq(smp.payload.op),
                         go.eq(1), running.eq(1), from_cmd.eq(0), n_in.eq(n_in + 1)]
        return m


def register_table(wrapper: BshwHostWrapper | None = None, name: str = "bshw_host") -> str:
    """The Markdown register reference of the wrapper module ``name``, built from :data:`REGISTERS` (no
    hand-kept copy); with a wrapper, the design-dependent reset values are filled in."""
    def reset(r):
        if isinstance(r.reset, str):
            return f"0x{wrapper.reset_value(r):08x}" if wrapper is not None else f"(design: {r.reset})"
        return f"0x{r.reset:08x}"

    rows = [f"| 0x{r.addr:02x} | 0x{4 * r.addr:03x} | `{r.name}` | {r.access} | {reset(r)} | {r.meaning} |"
            for r in REGISTERS]
    head = f"# `{name}`: Wishbone registers (generated by bshw rtl from bshw/host_wrapper.py REGISTERS)\n\n"
    if wrapper is not None:
        head += (f"Around `{wrapper.periphery_name}`, network {'-'.join(map(str, wrapper.sizes))}: a row of "
                 f"levels is {wrapper.w_words} word(s), "
                 f"of counters {wrapper.c_words}, the pixels {wrapper.pix_words}; {wrapper.n_streams} LFSR streams.\n\n")
    return (head + "Wishbone B4 classic slave, 32-bit data, `adr` a word address (byte address = 4 x word). "
            "Access: R read-only (writes ignored); RW storage (`sel` byte lanes honoured); W write-only "
            "trigger (reads 0); R/W1C write 1 to clear; RW+ a window on word `WIDX` of a buffer (every access "
            "adds 1 to `WIDX`); RW! a periphery host port. Accesses that use the periphery's host ports "
            "(`CMD` codes 1-4, `LFSR_DATA`) are **stalled** (no `ack`) while an operation runs "
            "(docs/arithmetic.md §15 host ports). Unmapped words read 0.\n\n"
            "| word | byte | register | access | reset | meaning |\n|---|---|---|---|---|---|\n"
            + "\n".join(rows) + "\n")


class _FlatWrapper:
    """The wrapper's ports flattened to plain members (``samples__payload``, ``wb__adr``, ...) plus its
    macro interfaces: what :class:`bshw.system.BshwSystem` needs to wire the wrapper to one behavioral
    macro per layer (the host system top, simulation only)."""

    def __init__(self, wrapper: BshwHostWrapper):
        members = {}
        for name, member in wrapper.signature.members.items():
            if name in ("samples", "results", "wb"):
                for path, sub in member.signature.members.flatten():
                    if sub.is_port:  # (an In member's signature is already flipped: flows are the wrapper's)
                        members["__".join((name, *map(str, path)))] = wiring.Member(sub.flow, sub.shape)
            else:
                members[name] = member
        self.signature = wiring.Signature(members)
        self.macros, self.L, self.params = wrapper.macros, wrapper.L, wrapper.periphery.params


def names(prefix: str = "bshw_") -> dict:
    """Module and file names of the wrapper's outputs of one design."""
    return {"host": f"{prefix}host", "host_system": f"{prefix}host_system", "regs": f"{prefix}host_regs.md"}


def write_host(out_dir, top, prefix: str = "bshw_") -> list:
    """Convert the wrapper of periphery ``top`` (module ``<prefix>periphery``) and its host system top
    (the wrapper and one behavioral macro per layer) and write them with the register table into
    ``out_dir``: ``<prefix>host.v``, ``<prefix>host_system.v``, ``<prefix>host_regs.md`` and the host
    system's filelist ``<prefix>host_system.f``. Byte-stable."""
    from pathlib import Path

    from amaranth.back import verilog

    from bshw.io import atomic_write_text
    from bshw.system import MODEL, BshwSystem

    n = names(prefix)
    wrapper = BshwHostWrapper(top, f"{prefix}periphery")
    host = verilog.convert(wrapper, name=n["host"], emit_src=False)
    system = verilog.convert(BshwSystem(_FlatWrapper(wrapper), n["host"]), name=n["host_system"], emit_src=False)
    out = Path(out_dir)
    return [atomic_write_text(out / f"{n['host']}.v", host),
            atomic_write_text(out / f"{n['host_system']}.v", system),
            atomic_write_text(out / n["regs"], register_table(wrapper, n["host"])),
            atomic_write_text(out / f"{n['host_system']}.f",
                              f"{prefix}periphery.v\n{n['host']}.v\n{n['host_system']}.v\n{MODEL}.v\n")]


# Verilator lint waivers of the wrapper's file (appended to bshw_lint.vlt by bshw rtl): properties of
# Amaranth's netlist output, as the periphery's (bshw/verilog/bshw_lint.vlt says why each is one)
LINT_WAIVERS = """
// The host wrapper (bshw/host_wrapper.py): the same properties of Amaranth's netlist output.
lint_off -rule UNUSEDSIGNAL -file "*bshw_*host.v"
lint_off -rule WIDTHEXPAND -file "*bshw_*host.v"
lint_off -rule WIDTHTRUNC -file "*bshw_*host.v"
lint_off -rule PROCASSINIT -file "*bshw_*host.v"
lint_off -rule CASEINCOMPLETE -file "*bshw_*host.v"
"""

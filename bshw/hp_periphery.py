"""Digital periphery a *high-precision* (HP) crossbar design needs per neuron, for comparison.

The binary stochastic (BS) neuron (:class:`bshw.neuron_periphery.NeuronPeriphery`) needs an LFSR, a
comparator, a few flip-flops and an error driver. An HP design on the same crossbar (the paper's
"8-bit inputs + ADC" memristor scheme, docs/energy.md) reads each column through an ADC and does
the backpropagation arithmetic of Eq. 1-2 in multi-bit digital logic. :class:`HpNeuronPeriphery` is
the smallest honest digital part of that, per neuron, at ``bits`` = 8:

=========================  ===================================================================
part                       why an HP neuron needs it
=========================  ===================================================================
ADC output register        latches the column's ``bits``-bit ADC code of y (the read port's
                           address register)
activation ROM             forward activation ``z = sigma(gain * y)``, 256 x 8 bits (the next
                           layer's ``bits``-bit input)
derivative ROM             ``z (1 - z)`` for the backward pass, 256 x 8 bits, looked up with z and
                           held until the error arrives; shares the ROM word with z (256 x 16, one
                           iCE40 block RAM)
error multiplier 8 x 8     ``delta = dx * z (1 - z)`` (Eq. 2's dz/dy times the back-propagated
                           error dx, the ADC code of ``W^T delta`` of the layer above)
gradient multiplier 8 x 8  ``x_i * delta`` per incoming synapse (time-multiplexed over the fan-in
                           rows): the weight-update product of Eq. 2 that the BS design replaces
                           by an AND gate feeding its counter
=========================  ===================================================================

Not included: the ADC and the input DAC / bit-serial driver themselves (analog; in the memristor
macro's "with ADC and shift & add" energy, docs/energy.md), the weight-programming circuit (in the
write term) and any control sequencer (the BS neuron has none either). Fixed-point contract,
``B = bits``, codes are integers:

- ``y`` code: two's complement B bits, standing for ``y_code * gain`` in logit units.
- ``z`` code: ``round((2^B - 1) * sigma(gain * y_code))``, unsigned.
- ``D`` code: ``round((2^B - 1) * 4 * s (1 - s))`` with ``s = sigma(gain * y_code)`` (full scale =
  the maximum 1/4 of z(1-z)), unsigned.
- ``dx``, ``delta``: two's complement B bits; ``delta = (dx * D) >> B`` (floor), i.e.
  ``delta ~ dx * 4 z (1 - z)``: the error keeps the ADC's scale, times at most 1.
- gradient: ``x * delta``, x an unsigned B-bit activation code; signed 2B bits.

The golden functions :func:`activation_table`, :func:`derivative_table`, :func:`hp_delta`,
:func:`hp_gradient` are this contract; the RTL is checked against them (tests/test_rtl_hp_periphery.py).
"""

import math

from amaranth.hdl import Cat, Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from bshw.core import check_int


def _sigmoid(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


def _round(v: float) -> int:
    return math.floor(v + 0.5)  # round half up


def _check(bits, gain):
    check_int("bits", bits, 2, 8)
    if isinstance(gain, bool) or not isinstance(gain, (int, float)):
        raise TypeError(f"gain must be a number, got {gain!r}")
    if not (math.isfinite(gain) and gain > 0):
        raise ValueError(f"gain must be a finite number > 0, got {gain!r}")


def _y_of_code(code: int, bits: int) -> int:
    return code - (1 << bits) if code >> (bits - 1) else code


def activation_table(bits: int = 8, gain: float = 1 / 16) -> list:
    """``z`` code for every ``bits``-bit ADC code (index = the code as unsigned)."""
    _check(bits, gain)
    full = (1 << bits) - 1
    return [_round(full * _sigmoid(gain * _y_of_code(c, bits))) for c in range(1 << bits)]


def derivative_table(bits: int = 8, gain: float = 1 / 16) -> list:
    """``D`` code (z(1-z) at full scale 1/4) for every ADC code."""
    _check(bits, gain)
    full = (1 << bits) - 1
    out = []
    for c in range(1 << bits):
        s = _sigmoid(gain * _y_of_code(c, bits))
        out.append(_round(full * 4 * s * (1 - s)))
    return out


def hp_delta(dx: int, D: int, bits: int = 8) -> int:
    """``delta = (dx * D) >> bits`` (floor): back-propagated error times the derivative."""
    return (dx * D) >> bits


def hp_gradient(x: int, delta: int) -> int:
    """The weight-update product of one synapse, ``x * delta``."""
    return x * delta


class HpNeuronPeriphery(wiring.Component):
    """Digital per-neuron periphery of a high-precision crossbar design (module docstring).

    Parameters
    ----------
    bits : int
        ADC, activation, derivative and error width, 2..8 (8: the paper's 8-bit HP scheme).
    gain : float
        Logit value of one ADC LSB, > 0 (default 1/16: the ADC's 8-bit range spans y in [-8, 8)).

    Attributes
    ----------
    adc : In(bits)
        ADC code of the column's y (two's complement).
    fwd : In(1)
        Look up at this clock edge: ``z`` and ``deriv`` hold the table entries of ``adc`` after it.
    z : Out(bits)
        Forward activation code (to the next layer's input drivers).
    deriv : Out(bits)
        Derivative code D, held for the backward pass.
    dx : In(signed(bits))
        ADC code of the back-propagated error sum of the layer above.
    bwd : In(1)
        ``delta <= (dx * deriv) >> bits`` at this clock edge.
    delta : Out(signed(bits))
        This neuron's error (drives the crossbar's backward pass).
    x_in : In(bits)
        An incoming synapse's input activation code (one per clock, time-multiplexed).
    upd : In(1)
        ``grad <= x_in * delta`` at this clock edge.
    grad : Out(signed(2 * bits))
        Weight-update product of the synapse presented on ``x_in``.
    """

    def __init__(self, bits: int = 8, gain: float = 1 / 16):
        _check(bits, gain)
        self.bits, self.gain = bits, gain
        super().__init__({"adc": In(bits), "fwd": In(1), "z": Out(bits), "deriv": Out(bits),
                          "dx": In(signed(bits)), "bwd": In(1), "delta": Out(signed(bits)),
                          "x_in": In(bits), "upd": In(1), "grad": Out(signed(2 * bits))})

    def elaborate(self, platform):
        m = Module()
        b = self.bits
        words = [z | (d << b) for z, d in zip(activation_table(b, self.gain), derivative_table(b, self.gain))]
        # one ROM word {D, z} per ADC code: a 256 x 16 block RAM with a synchronous read port
        m.submodules.rom = rom = Memory(shape=2 * b, depth=1 << b, init=words)
        rd = rom.read_port(domain="sync")
        m.d.comb += [rd.addr.eq(self.adc), rd.en.eq(self.fwd), self.z.eq(rd.data[:b]), self.deriv.eq(rd.data[b:])]
        # Eq. 2: delta = dx * f'(y), then the product x_i * delta of each incoming synapse
        prod = Signal(signed(2 * b + 1))
        m.d.comb += prod.eq(self.dx * Cat(self.deriv, 0).as_signed())
        with m.If(self.bwd):
            m.d.sync += self.delta.eq(prod >> b)  # arithmetic shift: floor
        with m.If(self.upd):
            m.d.sync += self.grad.eq(self.x_in * self.delta)
        return m

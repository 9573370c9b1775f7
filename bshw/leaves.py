"""Repeated leaf cells as shared Verilog modules (docs/arithmetic.md §15 "Emission").

Amaranth emits one Verilog module per elaborated instance, so a layer of 500 neurons would be 500
copies of the same text. The periphery instead emits each kind of leaf cell (an input sampler, a
hidden neuron of layer l, an output neuron) once, as its own module, and instantiates it per pixel
or neuron through ``Instance``, each instance tied to its own LFSR seed on a ``seed`` input. The
design is the same; the Verilog grows by one instance line-group per cell instead of one module.
"""

from amaranth.back import verilog
from amaranth.hdl import ClockSignal, Instance, ResetSignal
from amaranth.lib import wiring


def _silence(obj, depth=0):
    """Mark ``obj`` and the elaboratables it holds as used (they are never elaborated here)."""
    if hasattr(obj, "_MustUse__silence") and depth < 4:
        obj._MustUse__silence = True
        for v in vars(obj).values():
            _silence(v, depth + 1)


def _hier_block(text: str, name: str) -> str:
    head = text.index(f"module {name}(")
    end = text.index(");\n", head) + 3
    return text[:end] + "  /*verilator hier_block*/\n" + text[end:]


class LeafLibrary:
    """Leaf modules by name, and their instances in a parent module.

    Parameters
    ----------
    prefix : str
        Prepended to every module name (two configurations can then live in one design).
    inline : bool
        Elaborate each cell in place instead (Amaranth's simulator cannot run an ``Instance``).
    """

    def __init__(self, prefix: str = "bshw_", *, inline: bool = False):
        self.prefix, self.inline = prefix, bool(inline)
        self._factories = {}

    def instance(self, name: str, factory, cell: wiring.Component, *, clocked: bool = True):
        """An ``Instance`` of module ``prefix + name`` wired to ``cell``'s own port signals (with
        ``inline``: ``cell`` itself, to be added as a submodule).

        ``factory()`` builds the cell to emit the module from (called once, by :meth:`verilog`);
        ``cell`` is a cell of the same parameters whose ports the parent drives and reads - it is
        never elaborated itself. ``clocked``: the module has clock and reset ports (False for a
        purely combinational cell).
        """
        if self.inline:
            return cell
        modname = self.prefix + name
        self._factories.setdefault(modname, factory)
        _silence(cell)  # a port holder, elaborated only through its module
        ports = {"i_clk": ClockSignal(), "i_rst": ResetSignal()} if clocked else {}
        for pname, member in cell.signature.members.items():
            ports[("i_" if member.flow == wiring.In else "o_") + pname] = getattr(cell, pname)
        return Instance(modname, **ports)

    @property
    def names(self) -> list:
        return list(self._factories)

    def verilog(self) -> str:
        """The Verilog of every leaf module used so far, in first-use order.

        Each module carries Verilator's ``hier_block`` metacomment (a comment to every other tool):
        under ``verilator --hierarchical`` the cell is compiled once for all its instances, not once
        per instance (a build in minutes, but each instance is then evaluated as its own model).
        """
        return "".join(_hier_block(verilog.convert(f(), name=n, emit_src=False), n) for n, f in self._factories.items())

"""fwm-rl: the Fast Weight Memory of Schlag, Munkhdalai & Schmidhuber (ICLR 2021).

Importing the package registers the Gymnasium environments (``FWMGraph-v0``).
"""

from fwm_rl import envs as envs

__version__ = "0.1.0"

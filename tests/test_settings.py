"""Each stage's options are defined once (bnncore/settings.py): the verbs' flags, their
defaults and their checks are the Python API's keywords, defaults and checks."""

import numpy as np
import pytest

from bnncore import api, settings
from bnncore.errors import UsageError

#: the verb that runs each stage
VERBS = {"rtl": settings.RTL, "sim": settings.SIM, "synth": settings.SYNTH, "sweep": settings.SWEEP}

REQUIRED = {"rtl": ["NET"], "sim": ["RTL", "NET"], "synth": ["RTL"], "sweep": ["NET"]}


def _parser(verb):
    from bnncore.cli import build_parser
    sub = next(a for a in build_parser()._actions if a.choices and a.dest == "command")
    return sub.choices[verb]


@pytest.mark.parametrize("verb", VERBS)
def test_a_verb_without_flags_gives_the_api_defaults(verb):
    args = _parser(verb).parse_args(REQUIRED[verb])
    got = VERBS[verb].from_args(args)
    want = VERBS[verb].defaults()
    assert {k: tuple(v) if isinstance(v, list) else v for k, v in got.items()} == want


@pytest.mark.parametrize("verb", VERBS)
def test_every_option_has_its_flag(verb):
    flags = {a.dest: a.option_strings for a in _parser(verb)._actions}
    for o in VERBS[verb]:
        assert flags[o.name] == [o.cli_flag], (verb, o.name)


def test_flags_set_the_keywords():
    args = _parser("rtl").parse_args(["NET", "--banks", "3", "--shallow", "--no-vhdl", "--fold", "4,16;1,8"])
    o = settings.RTL.from_args(args)
    assert o["banks"] == 3 and o["pipelined"] is False and o["vhdl"] is False and o["fold"] == [(4, 16), (1, 8)]
    args = _parser("sweep").parse_args(["NET", "--targets", "32,64", "--seeds", "1,2"])
    assert settings.SWEEP.from_args(args)["targets"] == [32, 64]
    assert settings.SWEEP.from_args(args)["seeds"] == [1, 2]


def test_the_api_refuses_what_the_cli_refuses(tmp_path):
    from tests.hw.test_accelerator import random_net
    net = random_net((16, 8, 4), np.random.default_rng(0))
    with pytest.raises(UsageError, match=r"bnncore.generate: unknown keyword 'bank'; expected some of fold, "):
        api.generate(net, tmp_path / "rtl", bank=3)
    with pytest.raises(UsageError, match=r"bnncore.generate: banks must be an integer in \[2, 16\] \(each bank"):
        api.generate(net, tmp_path / "rtl", banks=1)
    with pytest.raises(UsageError, match=r"bnncore.plan: device must be one of up5k, .*not 'up6k'"):
        api.plan(net, device="up6k")
    with pytest.raises(UsageError, match=r"bnncore.simulate: gap must be in \[0, 1\)"):
        api.simulate(tmp_path, net, np.zeros((1, 16), np.uint8), gap=1.0)
    with pytest.raises(UsageError, match=r"bnncore.synthesize: unknown keyword 'pipelined'; expected some of board, "):
        api.synthesize(tmp_path, "up5k", pipelined=False)
    assert not any(tmp_path.iterdir()), "a refused call wrote nothing"
    p, _ = api.plan(net, banks=3, pipelined=False)
    assert p.banks == 3 and not p.pipelined

"""What every program's command line shares (scratchnet.cli): one-line errors, and a
suggestion for a mistyped option."""
import pytest

from scratchnet import cli


def parser(subcommand=False):
    p = cli.ArgumentParser(prog="prog")
    p.add_argument("--epochs", type=int)
    p.add_argument("--limit-test", type=int)
    if subcommand:
        sub = p.add_subparsers(dest="command")
        sub.add_parser("check").add_argument("--hint", type=int)
    return p


@pytest.mark.parametrize("argv, suggestion", [
    (["--epocs", "3"], "(did you mean --epochs?)"),
    (["--limit_test", "5"], "(did you mean --limit-test?)"),
    (["--epocs=3", "--limit_test", "5"], "(did you mean --epochs and --limit-test?)"),
    (["check", "--hnt", "2"], "(did you mean --hint?)"),
])
def test_a_mistyped_option_gets_a_suggestion_in_the_one_line(argv, suggestion, capsys):
    with pytest.raises(SystemExit) as exc:
        parser(subcommand=argv[0] == "check").parse_args(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith("prog: error: unrecognized arguments: ") and suggestion in err


def test_no_suggestion_for_something_unlike_any_option(capsys):
    with pytest.raises(SystemExit):
        parser().parse_args(["--zzzz"])
    assert "did you mean" not in capsys.readouterr().err

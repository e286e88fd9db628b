"""The romanxr exception tree.

Every error raised on purpose by romanxr derives from :class:`RomanxrError` and also from the
builtin exception a caller would naturally catch (``ValueError``, ``FileNotFoundError``,
``OSError``...), so ``except ValueError`` keeps working for code that does not know romanxr.
Messages name the file, the field and the fix.
"""

from __future__ import annotations

__all__ = [
    "AssociationError",
    "BatchError",
    "ConfigError",
    "CrdsConfigurationError",
    "ExposureError",
    "FileFormatError",
    "InputError",
    "InputFileError",
    "OutputError",
    "OutputExistsError",
    "ReferenceFileError",
    "ReferenceFormatError",
    "ReferenceMismatchError",
    "ReferenceNotFoundError",
    "ReferenceTypeError",
    "RomanxrError",
    "RomanxrWarning",
    "WrongProductError",
]


class RomanxrError(Exception):
    """Base class of every error romanxr raises on purpose."""


class RomanxrWarning(UserWarning):
    """Base class of romanxr's warnings (tests treat them as errors)."""


class InputError(RomanxrError, ValueError):
    """The input data or metadata cannot be calibrated as given."""


class FileFormatError(InputError):
    """A file is not a readable ASDF file, or is truncated or corrupt."""


class InputFileError(InputError):
    """An input file cannot be read as opened: unreadable, or changed after it was opened."""


class WrongProductError(InputError):
    """A valid file, but not the kind of product that was expected (e.g. a cal for an uncal)."""


class ExposureError(InputError):
    """Exposure metadata or arrays violate the Dataset contract (read_pattern, dims, dtypes)."""


class ConfigError(RomanxrError, ValueError):
    """A step name, parameter name or parameter value is not valid."""


class ReferenceFileError(RomanxrError, LookupError):
    """Base class for reference-file problems."""


class ReferenceFormatError(ReferenceFileError, FileFormatError):
    """A reference file is not readable ASDF, truncated or corrupt (a reference problem, and
    a :class:`FileFormatError`)."""


class ReferenceNotFoundError(ReferenceFileError, FileNotFoundError):
    """No reference file could be resolved (missing override, not in the CRDS cache, no match)."""


class CrdsConfigurationError(ReferenceNotFoundError):
    """CRDS is not configured well enough to resolve references offline."""


class ReferenceMismatchError(ReferenceFileError, ValueError):
    """A reference file does not fit the exposure (shape, detector, optical element, type)."""


class OutputError(RomanxrError, OSError):
    """The output cannot be written (bad path, exists without overwrite, disk full...)."""


class OutputExistsError(OutputError, FileExistsError):
    """Without overwrite, the output exists: found before the compute (``computed=False``) or
    appeared while the run was computing (another writer).

    The finished result was removed; the file at the target (the other writer's) is untouched.
    ``str(err)`` names the Python fix (``overwrite=True``), :meth:`cli_message` the command
    line's (``--overwrite``).
    """

    def __init__(self, target: object, computed: bool = True) -> None:
        self.target = target
        self.computed = computed  # False: found before anything was computed
        super().__init__(self._text("pass overwrite=True"))

    def _text(self, fix: str) -> str:
        if not self.computed:
            return (
                f"{self.target}: the output already exists and overwriting is off; nothing "
                f"was computed. Write to another path, or {fix} to replace it"
            )
        return (
            f"{self.target}: the output appeared while this run was computing (another run "
            "writing the same path?) and overwriting is off, so it was kept and this run's "
            f"finished result was removed. Write to another path, or {fix} to replace it"
        )

    def cli_message(self) -> str:
        """The message in the command line's terms."""
        return self._text("run again with --overwrite (the default)")


class ReferenceTypeError(ReferenceMismatchError, WrongProductError):
    """A reference file of another type than the one asked for (e.g. a gain file as the flat).

    Both a :class:`ReferenceMismatchError` and a :class:`WrongProductError`.
    """


class AssociationError(InputError):
    """An association file (``*_asn.json``) that cannot be read, or a member that cannot be
    used (unknown ``exptype``, missing file)."""


class BatchError(InputError):
    """Some members of a batch (an exposure tree, a file list, an association) cannot be
    calibrated; :attr:`problems` maps each member (its file) to its error.

    Raised before anything is computed, listing every problem at once.
    """

    def __init__(self, problems: dict[str, Exception], what: str = "batch") -> None:
        self.problems = dict(problems)
        lines = [f"  {member}: {type(exc).__name__}: {exc}" for member, exc in problems.items()]
        super().__init__(
            f"{len(problems)} member(s) of the {what} cannot be calibrated (nothing was "
            "computed):\n" + "\n".join(lines) + "\nfix or remove them, or pass "
            "on_error='continue' (--continue-on-error) to calibrate the others"
        )

"""The exceptions bdnsca raises. All are ValueErrors under ``BdnscaError``."""

from bdnsca._core import BdnscaError, IndexFileError


class DataError(BdnscaError):
    """An input file is malformed: the message names the file, line and field."""

    def __init__(self, path: object, line: int | None, message: str) -> None:
        where = f"{path}:{line}" if line is not None else f"{path}"
        super().__init__(f"{where}: {message}")
        self.path = str(path)
        self.line = line
        self.message = message

    def __reduce__(self) -> tuple[type, tuple[str, int | None, str]]:
        # Pickles (multiprocessing, Ray) through __init__'s own arguments, not the joined message.
        return (type(self), (self.path, self.line, self.message))


__all__ = ["BdnscaError", "IndexFileError", "DataError"]

"""The one error type of the data layer."""


class DataError(Exception):
  """Missing or malformed data. The message names the file, the line or key, and the field."""

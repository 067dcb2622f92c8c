"""Durations and sizes for people, as Docker prints them (go-units' HumanDuration, HumanSize, BytesSize).

Both the daemon (ps's "Up 3 seconds") and the command line ("2 minutes ago", "4.26MB") use these.
"""

_DECIMAL = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"]
_BINARY = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"]


def human_size(size: float, precision: int = 4) -> str:
    """go-units HumanSizeWithPrecision: decimal units, `%.<precision>g` (1984000 → "1.984MB", or "1.98MB" at 3)."""
    i = 0
    size = float(size)
    while size >= 1000.0 and i < len(_DECIMAL) - 1:
        size /= 1000.0
        i += 1
    return f"{size:.{precision}g}{_DECIMAL[i]}"


def bytes_size(size: float) -> str:
    """go-units BytesSize: binary units, `%.4g` (1048576 → "1MiB")."""
    i = 0
    size = float(size)
    while size >= 1024.0 and i < len(_BINARY) - 1:
        size /= 1024.0
        i += 1
    return f"{size:.4g}{_BINARY[i]}"


def human_duration(seconds: float) -> str:
    """go-units HumanDuration ("Less than a second", "3 seconds", "About a minute", "2 hours", "3 weeks")."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"

"""Durations and sizes for people, as Docker prints them (go-units' HumanDuration and HumanSize).

Both the daemon (ps's "Up 3 seconds") and the command line ("2 minutes ago", "4.26MB") use these.
"""

_SIZE_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")


def human_duration(seconds: float) -> str:
    """go-units HumanDuration: "Less than a second", "About a minute", "3 hours", "2 weeks"..."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = s // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = round(s / 3600)
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
    return f"{hours // 24 // 365} years"


def human_size(size: float) -> str:
    """go-units HumanSize: decimal units, 3 significant digits ("4.26MB", "1.5kB", "0B")."""
    i = 0
    while size >= 1000 and i < len(_SIZE_UNITS) - 1:
        size /= 1000
        i += 1
    return f"{size:.3g}{_SIZE_UNITS[i]}"

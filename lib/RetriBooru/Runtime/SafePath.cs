namespace RetriBooru.Runtime;

/// <summary>
/// The one place that joins a folder with a path made from data. Ids, tags, concept words and run names come from files
/// anyone can edit; <c>../../x</c>, an absolute path or a NUL byte in one of them must never read or write outside the
/// folder it belongs to, so every such join goes through <see cref="Under"/>.
/// </summary>
public static class SafePath
{
    /// <summary>
    /// <paramref name="root"/> joined with <paramref name="relative"/> ('/'-separated), as a full path; refused with a
    /// one-line InvalidDataException naming the value when the result is not strictly inside <paramref name="root"/>.
    /// </summary>
    /// <param name="what">What the value is, for the message (e.g. "manifest target id").</param>
    public static string Under(string root, string relative, string what = "path")
    {
        var fullRoot = Path.TrimEndingDirectorySeparator(Path.GetFullPath(root));
        string full;
        try
        {
            if (relative.Length == 0 || relative.Contains('\0')) throw new ArgumentException("empty or NUL");
            full = Path.GetFullPath(Path.Combine(fullRoot, relative));
        }
        catch (ArgumentException)
        {
            throw new InvalidDataException($"{what} '{Printable(relative)}' is not a usable path inside {fullRoot}");
        }
        if (!IsInside(fullRoot, full))
            throw new InvalidDataException($"{what} '{Printable(relative)}' leads outside its folder {fullRoot} (to {full}); refused");
        return full;
    }

    /// <summary>True when <paramref name="path"/> is strictly inside <paramref name="root"/> (both made full first; no links are followed).</summary>
    public static bool IsInside(string root, string path)
    {
        var r = Path.TrimEndingDirectorySeparator(Path.GetFullPath(root)) + Path.DirectorySeparatorChar;
        return Path.GetFullPath(path).StartsWith(r, StringComparison.Ordinal);
    }

    static string Printable(string value) => new(value.Select(c => char.IsControl(c) ? '?' : c).ToArray());
}

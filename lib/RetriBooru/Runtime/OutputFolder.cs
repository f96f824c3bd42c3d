namespace RetriBooru.Runtime;

/// <summary>
/// Where a verb writes its results. A folder that already holds an earlier run is never silently replaced: without
/// --resume or --overwrite it is refused; with --overwrite the new results are built in <c>OUT.new</c> beside it and
/// swapped in whole by <see cref="Commit"/>, so an interruption leaves the earlier run as it was.
/// </summary>
public sealed class OutputFolder
{
    /// <summary>The folder the user named.</summary>
    public string Path { get; }
    /// <summary>Where to write now: <see cref="Path"/>, or the staging folder beside it when replacing an earlier run.</summary>
    public string WorkingPath { get; }
    public bool Staged => WorkingPath != Path;

    OutputFolder(string path, string working)
    {
        Path = path;
        WorkingPath = working;
    }

    public static OutputFolder Open(string path, bool resume, bool overwrite)
    {
        if (resume && overwrite) throw new ArgumentException("--resume and --overwrite exclude each other: continue the earlier run, or replace it");
        var full = System.IO.Path.GetFullPath(path).TrimEnd(System.IO.Path.DirectorySeparatorChar);
        if (File.Exists(full)) throw new IOException($"{path} is a file, not a folder");
        var entries = Directory.Exists(full) ? Directory.EnumerateFileSystemEntries(full).Take(3).Select(System.IO.Path.GetFileName).ToList() : [];
        if (entries.Count == 0 || resume) return new OutputFolder(full, full);
        if (!overwrite)
            throw new IOException($"{path} already holds an earlier run ({string.Join(", ", entries)}{(entries.Count == 3 ? ", ..." : "")}); pass --resume to continue it or --overwrite to replace it");
        var staging = full + ".new";
        if (Directory.Exists(staging)) Directory.Delete(staging, recursive: true); // left by an interrupted replacement
        Directory.CreateDirectory(staging);
        return new OutputFolder(full, staging);
    }

    /// <summary>Swaps the finished results in (no-op when writing in place): the earlier folder moves aside, the new one takes its name.</summary>
    public void Commit()
    {
        if (!Staged) return;
        var old = Path + ".old";
        if (Directory.Exists(old)) Directory.Delete(old, recursive: true);
        if (Directory.Exists(Path)) Directory.Move(Path, old);
        Directory.Move(WorkingPath, Path);
        if (Directory.Exists(old)) Directory.Delete(old, recursive: true);
    }
}

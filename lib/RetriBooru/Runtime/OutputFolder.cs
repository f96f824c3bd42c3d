namespace RetriBooru.Runtime;

/// <summary>
/// Where a verb writes its results. A folder that already holds earlier results is never silently replaced and never
/// half-replaced: the new results are built in <c>OUT.new</c> beside it, renamed to <c>OUT.ready</c> when complete, and
/// swapped in whole by <see cref="Commit"/>. An interruption at any point (kill -9, Ctrl-C, a full disk) leaves either the
/// earlier folder as it was or, once <c>OUT.ready</c> exists, a swap that the next run finishes; the next run also removes
/// an unfinished <c>OUT.new</c> and says so in <see cref="Notes"/>. While open, the folder is locked (<c>OUT.busy</c>,
/// released by <see cref="Dispose"/> or the process's end): a second verb writing to the same folder at the same time is
/// refused instead of removing the first one's staging folder.
/// </summary>
public sealed class OutputFolder : IDisposable
{
    /// <summary>The folder the user named.</summary>
    public string Path { get; }
    /// <summary>
    /// Where to write now: <see cref="Path"/>, or the staging folder beside it when replacing earlier results (created by
    /// the first write, so a verb that fails before writing leaves nothing behind).
    /// </summary>
    public string WorkingPath { get; }
    public bool Staged => WorkingPath != Path;
    /// <summary>What was found and cleaned up from an earlier interrupted run, one sentence each (for the log).</summary>
    public IReadOnlyList<string> Notes { get; }

    readonly bool _carry;
    /// <summary>Writing in place into a folder that was new or empty: a failure may clear it again.</summary>
    readonly bool _fresh;

    FileStream? _lock;

    OutputFolder(string path, string working, IReadOnlyList<string> notes, bool carry, FileStream held, bool fresh = false)
    {
        _lock = held;
        Path = path;
        WorkingPath = working;
        Notes = notes;
        _carry = carry;
        _fresh = fresh;
    }

    static string StagingOf(string path) => path + ".new";
    static string ReadyOf(string path) => path + ".ready";
    static string OldOf(string path) => path + ".old";
    // Not OUT.lock: the stage cache locks STAGE/KEY.lock around producing a stage, and a dataset stage is built through an OutputFolder.
    static string LockOf(string path) => path + ".busy";

    /// <summary>Takes the folder's lock, or refuses at once (one line naming the folder) when another verb holds it.</summary>
    static FileStream Lock(string path, string shownPath)
    {
        var parent = System.IO.Path.GetDirectoryName(path);
        if (!string.IsNullOrEmpty(parent)) Directory.CreateDirectory(parent);
        try { return new FileStream(LockOf(path), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None); }
        catch (IOException e) when (e is not FileNotFoundException and not DirectoryNotFoundException)
        {
            throw new IOException($"{shownPath} is being written by another run (it holds {LockOf(path)}); wait for it to finish or choose another output folder", e);
        }
    }

    /// <summary>Releases the folder's lock (the results stay as they are: committed, abandoned or left to resume).</summary>
    public void Dispose()
    {
        if (_lock is null) return;
        _lock.Dispose();
        _lock = null;
        try { File.Delete(LockOf(Path)); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { } // another run took it meanwhile: its file now
    }

    /// <summary>
    /// A run's output folder (train, evaluate, sample): a new or empty folder is written in place; one that holds an
    /// earlier run is refused unless <paramref name="resume"/> (continue in place) or <paramref name="overwrite"/> (stage and swap).
    /// </summary>
    public static OutputFolder Open(string path, bool resume, bool overwrite)
    {
        if (resume && overwrite) throw new ArgumentException("--resume and --overwrite exclude each other: continue the earlier run, or replace it");
        var full = FullPath(path);
        var held = Lock(full, path);
        try
        {
            // An unfinished OUT.new of an interrupted --overwrite is only removed by the next --overwrite: until then it can be resumed.
            var notes = Recover(full, carry: false, removeStaging: overwrite);
            var entries = Directory.Exists(full) ? Directory.EnumerateFileSystemEntries(full).Take(3).Select(System.IO.Path.GetFileName).ToList() : [];
            if (entries.Count == 0 || resume) return new OutputFolder(full, full, notes, carry: false, held, fresh: entries.Count == 0 && !resume);
            if (!overwrite)
                throw new IOException($"{path} already holds an earlier run ({string.Join(", ", entries)}{(entries.Count == 3 ? ", ..." : "")}); pass --resume to continue it or --overwrite to replace it");
            return new OutputFolder(full, StagingOf(full), notes, carry: false, held);
        }
        catch
        {
            held.Dispose();
            File.Delete(LockOf(full));
            throw;
        }
    }

    /// <summary>
    /// A folder rebuilt as a whole (a dataset): always staged, also the first time, so the folder only ever appears complete.
    /// Entries of the earlier folder that the new build does not write (a synthetic source inside it, caches) are carried over.
    /// </summary>
    public static OutputFolder Rebuild(string path)
    {
        var full = FullPath(path);
        var held = Lock(full, path);
        try { return new OutputFolder(full, StagingOf(full), Recover(full, carry: true, removeStaging: true), carry: true, held); }
        catch
        {
            held.Dispose();
            File.Delete(LockOf(full));
            throw;
        }
    }

    static string FullPath(string path)
    {
        var full = System.IO.Path.TrimEndingDirectorySeparator(System.IO.Path.GetFullPath(path));
        if (File.Exists(full)) throw new IOException($"{path} is a file, not a folder");
        return full;
    }

    /// <summary>Swaps the finished results in (no-op when writing in place): the earlier folder moves aside, the new one takes its name.</summary>
    public void Commit()
    {
        if (!Staged) return;
        // The rename marks the results complete: from here on an interrupted swap is finished by the next run, not discarded.
        Directory.Move(WorkingPath, ReadyOf(Path));
        Swap(Path, _carry);
    }

    /// <summary>Writes the results with <paramref name="write"/> (given <see cref="WorkingPath"/>) and commits them; on any failure <see cref="Abandon"/> removes what was written.</summary>
    public T Complete<T>(Func<string, T> write)
    {
        try
        {
            Directory.CreateDirectory(WorkingPath);
            var result = write(WorkingPath);
            Commit();
            return result;
        }
        catch
        {
            Abandon();
            throw;
        }
    }

    public void Complete(Action<string> write) => Complete(dir => { write(dir); return true; });

    /// <summary>
    /// Removes what a failed verb wrote: the staging folder (the earlier folder was never touched), or, when it wrote in
    /// place into a new or empty folder, that folder's contents. A resumed run keeps its folder (it holds the checkpoint).
    /// </summary>
    public void Abandon()
    {
        if (Staged && Directory.Exists(WorkingPath)) Directory.Delete(WorkingPath, recursive: true);
        else if (_fresh && Directory.Exists(Path))
            foreach (var entry in new DirectoryInfo(Path).EnumerateFileSystemInfos().ToList())
                if (entry is DirectoryInfo dir) dir.Delete(recursive: true);
                else entry.Delete();
    }

    static void Swap(string path, bool carry)
    {
        string ready = ReadyOf(path), old = OldOf(path);
        if (Directory.Exists(path))
        {
            if (carry)
                foreach (var entry in Directory.EnumerateFileSystemEntries(path).ToList())
                {
                    var target = System.IO.Path.Combine(ready, System.IO.Path.GetFileName(entry));
                    if (File.Exists(target) || Directory.Exists(target)) continue;
                    if (Directory.Exists(entry)) Directory.Move(entry, target);
                    else File.Move(entry, target);
                }
            if (Directory.Exists(old)) Directory.Delete(old, recursive: true);
            Directory.Move(path, old);
        }
        Directory.Move(ready, path);
        if (Directory.Exists(old)) Directory.Delete(old, recursive: true);
    }

    /// <summary>Cleans up after a run that was interrupted while replacing <paramref name="path"/>; returns what it did.</summary>
    static List<string> Recover(string path, bool carry, bool removeStaging)
    {
        var notes = new List<string>();
        string staging = StagingOf(path), ready = ReadyOf(path), old = OldOf(path);
        if (removeStaging && Directory.Exists(staging))
        {
            Directory.Delete(staging, recursive: true);
            notes.Add($"removed {staging}: unfinished results of an interrupted run ({path} was not touched by it)");
        }
        if (Directory.Exists(ready))
        {
            Swap(path, carry);
            notes.Add($"{path}: finished swapping in the complete results of a run interrupted during its swap ({ready})");
        }
        else if (Directory.Exists(old))
        {
            if (Directory.Exists(path)) Directory.Delete(old, recursive: true);
            else Directory.Move(old, path);
            notes.Add($"{path}: cleaned up {old}, left by a run interrupted at the end of its swap");
        }
        return notes;
    }
}

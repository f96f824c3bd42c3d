using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using RetriBooru.Data;
using RetriBooru.Runtime;

namespace RetriBooru.Experiments;

/// <summary>The record at the top of every run folder (run.json).</summary>
public sealed record RunInfo
{
    [JsonPropertyName("id")] public required string Id { get; init; }
    [JsonPropertyName("name")] public required string Name { get; init; }
    [JsonPropertyName("kind")] public string Kind { get; init; } = "experiment";
    [JsonPropertyName("created_utc")] public DateTime CreatedUtc { get; init; }
    [JsonPropertyName("finished_utc")] public DateTime? FinishedUtc { get; init; }
    [JsonPropertyName("status")] public string Status { get; init; } = "running";
    [JsonPropertyName("seed")] public long Seed { get; init; }
    [JsonPropertyName("spec_file")] public string? SpecFile { get; init; }
    [JsonPropertyName("quick")] public bool Quick { get; init; }
    /// <summary>The `--set PATH=VALUE` overrides the spec file was run with (empty: the file as it is).</summary>
    [JsonPropertyName("overrides")] public IReadOnlyList<string> Overrides { get; init; } = [];
    [JsonPropertyName("points")] public IReadOnlyList<int>? Points { get; init; }
    [JsonPropertyName("provenance")] public Provenance? Provenance { get; init; }
    [JsonPropertyName("summary")] public IReadOnlyDictionary<string, double>? Summary { get; init; }
}

/// <summary>
/// A run folder: spec, resolved config, seeds, provenance, logs, checkpoints, samples and metrics of one
/// run. Folders are never reused: a new run gets a new timestamped name. Every file is written atomically.
/// </summary>
public sealed class RunFolder
{
    public string Path { get; }
    public RunInfo Info { get; private set; }

    RunFolder(string path, RunInfo info) { Path = path; Info = info; }

    /// <summary>Creates runs/ID where ID = UTC timestamp + name; a numeric suffix avoids ever overwriting.</summary>
    public static RunFolder Create(string runsRoot, string name, long seed, string kind = "experiment", string? specFile = null, bool quick = false,
        IReadOnlyList<int>? points = null, Provenance? provenance = null, DateTime? now = null, IReadOnlyList<string>? overrides = null)
    {
        var created = now ?? DateTime.UtcNow;
        var safeName = new string(name.Select(c => char.IsLetterOrDigit(c) || c is '-' or '_' ? c : '-').ToArray());
        Directory.CreateDirectory(runsRoot);
        var stem = $"{created:yyyyMMdd-HHmmss}-{safeName}";
        string id = stem;
        for (int i = 2; ; i++)
        {
            try
            {
                // CreateDirectory succeeds on existing folders, so claim the name with a marker file.
                var dir = SafePath.Under(runsRoot, id, "run name");
                Directory.CreateDirectory(dir);
                using (new FileStream(System.IO.Path.Combine(dir, ".claimed"), FileMode.CreateNew)) { }
                break;
            }
            catch (IOException) { id = $"{stem}-{i}"; }
        }
        var info = new RunInfo { Id = id, Name = name, Kind = kind, CreatedUtc = created, Seed = seed, SpecFile = specFile, Quick = quick, Overrides = overrides ?? [], Points = points, Provenance = provenance };
        var folder = new RunFolder(SafePath.Under(runsRoot, id, "run name"), info);
        folder.SaveInfo();
        return folder;
    }

    public static RunFolder Open(string path)
    {
        var file = System.IO.Path.Combine(path, "run.json");
        if (!System.IO.File.Exists(file)) throw new FileNotFoundException($"{path}: not a run folder (no run.json)", file);
        var info = JsonSerializer.Deserialize<RunInfo>(System.IO.File.ReadAllText(file), WorkbenchJson.Lines)
                   ?? throw new InvalidDataException($"{file}: empty run record");
        return new RunFolder(path, info);
    }

    public string File(string relative)
    {
        var full = SafePath.Under(Path, relative, "file of the run");
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(full)!);
        return full;
    }

    public void WriteJson<T>(string relative, T value) => AtomicFile.WriteAllText(File(relative), JsonSerializer.Serialize(value, WorkbenchJson.Pretty) + "\n");

    public void WriteText(string relative, string text) => AtomicFile.WriteAllText(File(relative), text);

    public void Finish(string status, IReadOnlyDictionary<string, double>? summary = null)
    {
        Info = Info with { Status = status, FinishedUtc = DateTime.UtcNow, Summary = summary ?? Info.Summary };
        SaveInfo();
    }

    void SaveInfo() => WriteJson("run.json", Info);
}

/// <summary>Lists the runs under a folder (for `retribooru runs`), newest first.</summary>
public static class RunIndex
{
    /// <summary>The runs under <paramref name="runsRoot"/>, newest first (folders whose run.json cannot be read are left out; see <see cref="Unreadable"/>).</summary>
    public static IReadOnlyList<(string Path, RunInfo Info)> List(string runsRoot) => Scan(runsRoot).Runs;

    /// <summary>Run folders whose run.json exists but cannot be read, each with the reason (so `runs` can list them instead of hiding them).</summary>
    public static IReadOnlyList<(string Path, string Problem)> Unreadable(string runsRoot) => Scan(runsRoot).Unreadable;

    static (List<(string, RunInfo)> Runs, List<(string, string)> Unreadable) Scan(string runsRoot)
    {
        var runs = new List<(string, RunInfo)>();
        var unreadable = new List<(string, string)>();
        if (!Directory.Exists(runsRoot)) return (runs, unreadable);
        foreach (var dir in Directory.GetDirectories(runsRoot).Order(StringComparer.Ordinal))
        {
            var file = System.IO.Path.Combine(dir, "run.json");
            if (!System.IO.File.Exists(file)) continue; // not a run folder (the stage cache, a foreign folder)
            try
            {
                var info = JsonSerializer.Deserialize<RunInfo>(System.IO.File.ReadAllText(file), WorkbenchJson.Lines);
                if (info is not null) runs.Add((dir, info));
                else unreadable.Add((dir, $"{file}: empty (null) run record"));
            }
            catch (Exception e) when (e is JsonException or IOException or UnauthorizedAccessException or NotSupportedException)
            {
                unreadable.Add((dir, $"{file}: not a readable run record ({e.Message.Split('\n')[0]})"));
            }
        }
        return (runs.OrderByDescending(r => r.Item2.CreatedUtc).ThenByDescending(r => r.Item2.Id, StringComparer.Ordinal).ToList(), unreadable);
    }
}

/// <summary>
/// Content-addressed stage outputs: a stage's folder is named by the hash of its inputs (config, seed,
/// upstream keys), so a rerun with the same inputs finds the finished stage and skips it. A stage counts
/// as finished only when its done.json exists, which is written last.
/// </summary>
public sealed class StageCache(string root)
{
    public string Root { get; } = root;

    public static string Key(object inputs)
    {
        var canonical = JsonSerializer.Serialize(inputs, WorkbenchJson.Lines);
        return Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(canonical)))[..16].ToLowerInvariant();
    }

    static FileStream Lock(string path)
    {
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(path)!);
        while (true)
        {
            try { return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None); }
            catch (IOException) { Thread.Sleep(250); }
        }
    }

    public string Folder(string stage, string key) => SafePath.Under(Root, $"{stage}/{key}", "stage name");

    public bool IsDone(string stage, string key) => System.IO.File.Exists(System.IO.Path.Combine(Folder(stage, key), "done.json"));

    public void MarkDone(string stage, string key, object inputs, TimeSpan elapsed) =>
        AtomicFile.WriteAllText(System.IO.Path.Combine(Folder(stage, key), "done.json"),
            JsonSerializer.Serialize(new { stage, key, inputs, elapsed_seconds = elapsed.TotalSeconds, finished_utc = DateTime.UtcNow }, WorkbenchJson.Pretty) + "\n");

    /// <summary>
    /// Runs a stage unless its output exists (or force is set); returns its folder and whether it was reused.
    /// With <paramref name="keepPartial"/> an unfinished folder is kept so the stage can resume (training
    /// checkpoints); otherwise it is cleared first.
    /// </summary>
    public (string Folder, bool Reused) Run(string stage, object inputs, Action<string> produce, bool force = false, bool keepPartial = false)
    {
        var key = Key(inputs);
        var folder = Folder(stage, key);
        // Several processes may share a cache (job arrays): one of them produces a stage, the others wait and reuse it.
        using var exclusive = Lock(folder + ".lock");
        if (!force && IsDone(stage, key)) return (folder, true);
        if (Directory.Exists(folder) && (force || !keepPartial)) Directory.Delete(folder, recursive: true);
        Directory.CreateDirectory(folder);
        var watch = System.Diagnostics.Stopwatch.StartNew();
        produce(folder);
        MarkDone(stage, key, inputs, watch.Elapsed);
        return (folder, false);
    }
}

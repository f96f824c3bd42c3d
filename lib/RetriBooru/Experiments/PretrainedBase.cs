using System.Reflection;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using RetriBooru.Data;
using RetriBooru.Diffusion;
using RetriBooru.Runtime;

namespace RetriBooru.Experiments;

/// <summary>
/// A base model a spec is given (<c>base.checkpoint</c>) instead of training it, the way the paper starts from Stable
/// Diffusion: a model folder, or one shipped inside this library (<c>builtin:NAME</c>, from the repository's
/// <c>models/NAME</c>), extracted once into the stage cache. A base exported from a run (<see cref="Export"/>) carries
/// <see cref="RecordFile"/>: the world, recipe and seed it was trained with, so a spec that would have trained another
/// base is refused (<see cref="Mismatches"/>) instead of silently fine-tuned on the wrong one.
/// </summary>
public static class PretrainedBase
{
    public const string BuiltinPrefix = "builtin:";
    /// <summary>What trained the base (beside its diffusers files; not part of <see cref="ContentIdentity"/>).</summary>
    public const string RecordFile = "pretraining.json";
    /// <summary>Under the stage cache: built-in bases, extracted (one folder per name and content).</summary>
    public const string CacheFolder = "pretrained";
    const string ResourcePrefix = "pretrained/";
    /// <summary>Larger than any shipped tiny base by far; a file above it is not a resource of ours.</summary>
    const long MaxResourceBytes = 256L << 20;

    /// <summary>The built-in bases this library ships, by name.</summary>
    public static IReadOnlyList<string> BuiltinNames =>
        Resources().Select(r => r.Relative.Split('/')[0]).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();

    /// <summary>
    /// The folder to load for <paramref name="checkpoint"/>: a built-in base extracted under
    /// <paramref name="cacheRoot"/>/pretrained (once; built aside, then moved into place), or the folder named.
    /// </summary>
    public static string Resolve(string checkpoint, string cacheRoot)
    {
        if (!checkpoint.StartsWith(BuiltinPrefix, StringComparison.Ordinal))
        {
            if (!Directory.Exists(checkpoint)) throw new DirectoryNotFoundException($"base.checkpoint {checkpoint}: no such model folder");
            return checkpoint;
        }
        var name = checkpoint[BuiltinPrefix.Length..];
        var files = Resources().Where(r => r.Relative.StartsWith(name + "/", StringComparison.Ordinal)).ToList();
        if (name.Length == 0 || files.Count == 0)
            throw new ArgumentException($"base.checkpoint {checkpoint}: no such built-in base ({(BuiltinNames.Count == 0 ? "this build ships none" : "known: " + string.Join(", ", BuiltinNames.Select(n => BuiltinPrefix + n)))})");
        var assembly = typeof(PretrainedBase).Assembly;
        // Named by the resources' content, so a library with another shipped base never reuses a stale extraction.
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var (resource, relative) in files)
        {
            hash.AppendData(Encoding.UTF8.GetBytes(relative + "\n"));
            using var stream = assembly.GetManifestResourceStream(resource)!;
            AppendStream(hash, stream);
        }
        var folder = SafePath.Under(Path.Combine(cacheRoot, CacheFolder), $"{name}-{Convert.ToHexString(hash.GetHashAndReset())[..12].ToLowerInvariant()}", "built-in base name");
        if (Directory.Exists(folder)) return folder;
        var staging = $"{folder}.new-{Environment.ProcessId}";
        if (Directory.Exists(staging)) Directory.Delete(staging, recursive: true);
        foreach (var (resource, relative) in files)
        {
            var target = SafePath.Under(staging, relative[(name.Length + 1)..], "built-in base file");
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            using var source = assembly.GetManifestResourceStream(resource)!;
            using var output = File.Create(target);
            source.CopyTo(output);
        }
        try { Directory.Move(staging, folder); }
        catch (IOException) when (Directory.Exists(folder)) { Directory.Delete(staging, recursive: true); } // another process extracted it first
        return folder;
    }

    static IEnumerable<(string Resource, string Relative)> Resources() =>
        typeof(PretrainedBase).Assembly.GetManifestResourceNames()
            .Select(r => (Resource: r, Relative: r.Replace('\\', '/')))
            .Where(r => r.Relative.StartsWith(ResourcePrefix, StringComparison.Ordinal))
            .Select(r => (r.Resource, r.Relative[ResourcePrefix.Length..]))
            .OrderBy(r => r.Item2, StringComparer.Ordinal);

    /// <summary>
    /// SHA-256 (hex) of a model folder's files, relative names and bytes in ordinal order, <see cref="RecordFile"/>
    /// left out: what later stages are keyed by, so a copy of a base anywhere (or a built-in one) reuses the models
    /// trained on it, and a changed file retrains them.
    /// </summary>
    public static string ContentIdentity(string folder)
    {
        var root = Path.GetFullPath(folder);
        var files = Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories)
            .Select(f => (Full: f, Relative: Path.GetRelativePath(root, f).Replace('\\', '/')))
            .Where(f => f.Relative != RecordFile)
            .OrderBy(f => f.Relative, StringComparer.Ordinal).ToList();
        if (files.Count == 0) throw new InvalidDataException($"{folder}: the base model folder holds no files");
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var (full, relative) in files)
        {
            hash.AppendData(Encoding.UTF8.GetBytes(relative + "\n"));
            using var stream = RegularFile.OpenRead(full, "base model file");
            AppendStream(hash, stream);
        }
        return Convert.ToHexString(hash.GetHashAndReset()).ToLowerInvariant();
    }

    static void AppendStream(IncrementalHash hash, Stream stream)
    {
        var buffer = new byte[1 << 16];
        long total = 0;
        int read;
        while ((read = stream.Read(buffer)) > 0)
        {
            if ((total += read) > MaxResourceBytes) throw new InvalidDataException($"a base model file is larger than {MaxResourceBytes >> 20} MiB");
            hash.AppendData(buffer, 0, read);
        }
    }

    /// <summary>The folder's <see cref="RecordFile"/>, or null when it has none (an SD checkpoint, a hand-made folder).</summary>
    public static PretrainingRecord? ReadRecord(string folder)
    {
        var path = Path.Combine(folder, RecordFile);
        if (!File.Exists(path)) return null;
        try { return JsonSerializer.Deserialize<PretrainingRecord>(RegularFile.ReadAllText(path, "pretraining record"), WorkbenchJson.Lines) ?? throw new InvalidDataException($"{path}: empty"); }
        catch (JsonException e) { throw new InvalidDataException($"{path}: not a pretraining record ({e.Message})"); }
    }

    /// <summary>
    /// Why this base is not the one the spec would train (one sentence each; empty when it is): another world (the
    /// dataset's settings or content), another recipe (base fields other than checkpoint), another seed, or files changed
    /// since it was exported. Thread count and kernels are recorded but not compared: they change rounding, not the recipe.
    /// <paramref name="identity"/> is the folder's <see cref="ContentIdentity"/> (the caller keys later stages by it too).
    /// </summary>
    public static IReadOnlyList<string> Mismatches(string identity, PretrainingRecord record, object datasetContent, BaseTrainingOptions recipe, long seed)
    {
        var problems = new List<string>();
        var current = JsonSerializer.SerializeToNode(datasetContent, WorkbenchJson.Lines);
        if (!JsonNode.DeepEquals(record.Dataset, current))
            problems.Add($"it was trained on another world ({Differences(record.Dataset, current, "dataset")})");
        var wanted = JsonSerializer.SerializeToNode(recipe with { Checkpoint = null }, WorkbenchJson.Lines);
        if (!JsonNode.DeepEquals(record.Base, wanted))
            problems.Add($"it was trained with another recipe ({Differences(record.Base, wanted, "base")})");
        if (record.Seed != seed) problems.Add($"it was trained with seed {record.Seed}, the spec's is {seed}");
        if (record.Identity is { } recorded && recorded != identity)
            problems.Add("its files changed since it was exported (content identity differs from the record's)");
        return problems;
    }

    /// <summary>The first few differing fields, "path: recorded -> spec".</summary>
    static string Differences(JsonNode? recorded, JsonNode? current, string path)
    {
        var found = new List<string>();
        Collect(recorded, current, path, found);
        return found.Count == 0 ? "the content differs" : string.Join("; ", found.Take(4)) + (found.Count > 4 ? $"; and {found.Count - 4} more" : "");
    }

    static void Collect(JsonNode? a, JsonNode? b, string path, List<string> found)
    {
        if (a is JsonObject oa && b is JsonObject ob)
        {
            foreach (var name in oa.Select(p => p.Key).Union(ob.Select(p => p.Key)).Order(StringComparer.Ordinal))
                Collect(oa[name], ob[name], $"{path}.{name}", found);
            return;
        }
        if (!JsonNode.DeepEquals(a, b)) found.Add($"{path}: {Show(a)} -> {Show(b)}");
    }

    static string Show(JsonNode? node) => node is null ? "null" : node.ToJsonString() is var s && s.Length > 24 ? s[..12] + "..." : node.ToJsonString();

    /// <summary>
    /// Copies a finished base stage's model (<paramref name="stageFolder"/>, holding done.json and model/) to
    /// <paramref name="outFolder"/> with its <see cref="RecordFile"/>: the stage's inputs, training time and, when
    /// <paramref name="runFolder"/> is given, the run's id, command and provenance. A folder holding an earlier export is
    /// replaced only with <paramref name="overwrite"/>, built aside and swapped in whole.
    /// </summary>
    public static PretrainingRecord Export(string stageFolder, string outFolder, string? runFolder, bool overwrite = false)
    {
        var donePath = Path.Combine(stageFolder, "done.json");
        if (!File.Exists(donePath)) throw new FileNotFoundException($"{stageFolder}: not a finished stage (no done.json)", donePath);
        var done = JsonNode.Parse(RegularFile.ReadAllText(donePath, "stage record")) as JsonObject
                   ?? throw new InvalidDataException($"{donePath}: not a JSON object");
        if (done["stage"]?.GetValue<string>() != "base") throw new InvalidDataException($"{donePath}: a '{done["stage"]}' stage, not a base");
        var inputs = done["inputs"] as JsonObject ?? throw new InvalidDataException($"{donePath}: no inputs");
        var model = Path.Combine(stageFolder, "model");
        if (!Directory.Exists(model)) throw new DirectoryNotFoundException($"{stageFolder}: no model folder");
        JsonObject? run = null;
        if (runFolder is not null)
        {
            var info = RunFolder.Open(runFolder).Info;
            run = new JsonObject
            {
                ["id"] = info.Id, ["spec_file"] = info.SpecFile, ["overrides"] = JsonSerializer.SerializeToNode(info.Overrides, WorkbenchJson.Lines),
                ["provenance"] = JsonSerializer.SerializeToNode(info.Provenance, WorkbenchJson.Lines),
            };
        }
        var record = new PretrainingRecord
        {
            Stage = done["key"]?.GetValue<string>() ?? "",
            Dataset = inputs["dataset"]?.DeepClone(),
            Base = inputs["base"]?.DeepClone(),
            Seed = inputs["seed"]?.GetValue<long>() ?? throw new InvalidDataException($"{donePath}: no seed"),
            Threads = inputs["threads"]?.GetValue<int>(),
            Numerics = inputs["numerics"]?.GetValue<string>(),
            EmaRule = inputs["emaRule"]?.GetValue<string>() ?? inputs["ema_rule"]?.GetValue<string>(),
            TrainingSeconds = done["elapsed_seconds"]?.GetValue<double>(),
            FinishedUtc = done["finished_utc"]?.GetValue<DateTime>(),
            Run = run,
            Identity = ContentIdentity(model),
        };
        using var output = OutputFolder.Open(outFolder, resume: false, overwrite: overwrite);
        output.Complete(dir =>
        {
            foreach (var file in Directory.EnumerateFiles(model, "*", SearchOption.AllDirectories))
            {
                var target = SafePath.Under(dir, Path.GetRelativePath(model, file), "model file");
                Directory.CreateDirectory(Path.GetDirectoryName(target)!);
                File.Copy(file, target);
            }
            AtomicFile.WriteAllText(Path.Combine(dir, RecordFile), JsonSerializer.Serialize(record, WorkbenchJson.Pretty) + "\n");
        });
        return record;
    }
}

/// <summary>What trained an exported base (<see cref="PretrainedBase.RecordFile"/>): the base stage's inputs and where it ran.</summary>
public sealed record PretrainingRecord
{
    /// <summary>The base stage's cache key.</summary>
    [JsonPropertyName("stage")] public string Stage { get; init; } = "";
    /// <summary>The world it trained on: dataset settings and the SHA-256 of its records, attributes and manifests.</summary>
    [JsonPropertyName("dataset")] public JsonNode? Dataset { get; init; }
    /// <summary>The spec's base block it was trained with.</summary>
    [JsonPropertyName("base")] public JsonNode? Base { get; init; }
    [JsonPropertyName("seed")] public long Seed { get; init; }
    [JsonPropertyName("threads")] public int? Threads { get; init; }
    [JsonPropertyName("numerics")] public string? Numerics { get; init; }
    [JsonPropertyName("ema_rule")] public string? EmaRule { get; init; }
    [JsonPropertyName("training_seconds")] public double? TrainingSeconds { get; init; }
    [JsonPropertyName("finished_utc")] public DateTime? FinishedUtc { get; init; }
    /// <summary>The run that trained it: id, spec file, overrides, provenance (git commit, machine, load).</summary>
    [JsonPropertyName("run")] public JsonNode? Run { get; init; }
    /// <summary><see cref="PretrainedBase.ContentIdentity"/> of the model files when exported.</summary>
    [JsonPropertyName("identity")] public string? Identity { get; init; }
}

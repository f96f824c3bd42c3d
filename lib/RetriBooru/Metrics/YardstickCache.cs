using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using RetriBooru.Data;
using RetriBooru.Runtime;

namespace RetriBooru.Metrics;

/// <summary>
/// The suite's real-image yardsticks kept on disk in <c>&lt;dataset&gt;/evaluation-cache/</c>, beside the probe's
/// <c>probe/</c>: the identity and attribute-agreement baselines, the leakage baselines, KID's real side (features,
/// floor, ceiling) and readability's real mean. They are most of a suite's setup and depend only on what their key
/// holds: this format's and the protocol's versions, the manifest's SHA-256, the SHA-256 of every image file the
/// computation reads, the image size, the seed, the embedder (or the probe's weights) and the options that steer the
/// computation. One JSON file per key (its name carries a prefix of the key), so suites with other seeds or sizes keep
/// their own entries. A file that cannot be read, or whose stored key is not the expected one, is named in the suite's
/// notes and recomputed (then overwritten), never trusted. Files are written atomically. Delete the folder to clear it.
/// </summary>
sealed class YardstickCache
{
    public const string Folder = "evaluation-cache";
    /// <summary>Bump when what an entry holds or how its key is made changes.</summary>
    public const int FormatVersion = 1;
    /// <summary>Largest small entry (a baseline and its notes) read back; KID's real side passes its own bound.</summary>
    public const long MaxSmallEntryBytes = 4 << 20;

    readonly string? _folder;
    readonly List<string> _notes;
    readonly SortedDictionary<string, string> _sources = new(StringComparer.Ordinal);
    readonly Dictionary<string, string> _fileHashes = new(StringComparer.Ordinal);
    readonly Lock _gate = new();

    /// <param name="enabled">False: every yardstick is computed and nothing is read or written.</param>
    /// <param name="notes">The suite's notes: where an unusable cache file is reported.</param>
    public YardstickCache(string datasetDir, bool enabled, List<string> notes)
    {
        _folder = enabled ? Path.Combine(datasetDir, Folder) : null;
        _notes = notes;
    }

    /// <summary>For provenance: per yardstick, "cache FILE", "computed, saved to FILE", "computed (cache off)", ...</summary>
    public IReadOnlyDictionary<string, string> Sources { get { lock (_gate) return new SortedDictionary<string, string>(_sources, StringComparer.Ordinal); } }

    /// <summary>
    /// The cached value of <paramref name="label"/> when a file with exactly <paramref name="key"/> holds it; otherwise
    /// <paramref name="compute"/>'s value, saved for the next suite. The notes the computation made are stored with the
    /// value and replayed into <paramref name="notes"/> on a hit, so a cached yardstick leaves the same notes.
    /// </summary>
    public T GetOrCompute<T>(string label, YardstickKey key, Func<List<string>, T> compute, List<string> notes, long maxBytes = MaxSmallEntryBytes)
    {
        string digest = key.Digest();
        string? path = _folder is null ? null : Path.Combine(_folder, $"{key.Kind}-{digest[..24]}.json");
        if (path is not null && TryRead<T>(path, digest, maxBytes) is { } hit)
        {
            notes.AddRange(hit.Notes);
            Record(label, "cache " + path);
            return hit.Value;
        }
        var computedNotes = new List<string>();
        var value = compute(computedNotes);
        notes.AddRange(computedNotes);
        if (path is null) { Record(label, "computed (cache off)"); return value; }
        try
        {
            var entry = new JsonObject
            {
                ["format"] = FormatVersion,
                ["label"] = label,
                ["key"] = digest,
                ["key_parts"] = new JsonArray(key.Parts.Select(p => (JsonNode)JsonValue.Create(p)!).ToArray()),
                ["notes"] = new JsonArray(computedNotes.Select(n => (JsonNode)JsonValue.Create(n)!).ToArray()),
                ["value"] = JsonSerializer.SerializeToNode(value, Json),
            };
            AtomicFile.WriteAllText(path, entry.ToJsonString(Json));
            Record(label, "computed, saved to " + path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Record(label, "computed (not saved)");
            AddNote($"the evaluation cache could not be written ({path}): {e.Message}");
        }
        return value;
    }

    (T Value, IReadOnlyList<string> Notes)? TryRead<T>(string path, string digest, long maxBytes)
    {
        if (!File.Exists(path)) return null;
        try
        {
            var text = RegularFile.ReadAllText(path, "evaluation cache entry", maxBytes);
            var entry = JsonNode.Parse(text) as JsonObject ?? throw new InvalidDataException("not a JSON object");
            if ((int?)entry["format"] != FormatVersion) throw new InvalidDataException($"format {entry["format"]?.ToJsonString() ?? "missing"}, expected {FormatVersion}");
            if ((string?)entry["key"] != digest)
            {
                AddNote($"{path}: an evaluation cache entry made for other inputs (its key differs); recomputed");
                return null;
            }
            var notes = entry["notes"]?.Deserialize<List<string>>(Json) ?? throw new InvalidDataException("no notes");
            if (!entry.ContainsKey("value")) throw new InvalidDataException("no value");
            var value = entry["value"].Deserialize<T>(Json);
            if (value is IValidatedEntry validated) validated.Validate();
            return (value!, notes);
        }
        catch (Exception e) when (e is JsonException or InvalidDataException or IOException or FormatException or NotSupportedException or InvalidOperationException or ArgumentException)
        {
            AddNote($"{path}: unreadable evaluation cache entry ({e.Message}); recomputed");
            return null;
        }
    }

    /// <summary>SHA-256 of a file of <paramref name="datasetDir"/> (manifest-relative or full path), once per suite; "absent" or "unreadable" when it cannot be read.</summary>
    public string FileHash(string datasetDir, string relativeOrFull)
    {
        string path;
        try { path = Path.IsPathRooted(relativeOrFull) ? Path.GetFullPath(relativeOrFull) : ManifestReader.Resolve(datasetDir, relativeOrFull); }
        catch (Exception e) when (e is InvalidDataException or IOException or ArgumentException) { return "unresolvable"; }
        lock (_gate)
            if (_fileHashes.TryGetValue(path, out var known)) return known;
        string hash;
        try
        {
            using var stream = RegularFile.OpenRead(path, "dataset file");
            hash = Convert.ToHexString(SHA256.HashData(stream));
        }
        catch (FileNotFoundException) { hash = "absent"; }
        catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException) { hash = "unreadable"; }
        lock (_gate) _fileHashes[path] = hash;
        return hash;
    }

    /// <summary>An image embedder and the ONNX Runtime that runs it: their vectors are the cached numbers.</summary>
    public static string EmbedderIdentity(IImageEmbedder embedder) =>
        $"{embedder.Name}/onnxruntime {typeof(Microsoft.ML.OnnxRuntime.InferenceSession).Assembly.GetName().Version}";

    void Record(string label, string source) { lock (_gate) _sources[label] = source; }

    void AddNote(string note) { lock (_gate) if (!_notes.Contains(note)) _notes.Add(note); }

    /// <summary>Doubles are written in their shortest round-trip form, so a cached value is bit-identical.</summary>
    static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = false,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };
}

/// <summary>A cached value that checks its own sizes and invariants after it is read (a bad one is recomputed).</summary>
interface IValidatedEntry
{
    /// <summary>Throws <see cref="InvalidDataException"/> when the value cannot be what was written.</summary>
    void Validate();
}

/// <summary>What a cached yardstick depends on, as ordered "name=value" parts; the entry's key is their SHA-256.</summary>
sealed class YardstickKey(string kind)
{
    readonly List<string> _parts = [$"format={YardstickCache.FormatVersion}", $"protocol={EvaluationProtocol.Version}", $"kind={kind}"];

    public string Kind { get; } = kind;
    public IReadOnlyList<string> Parts => _parts;

    public YardstickKey With(string name, object? value)
    {
        _parts.Add(name + "=" + value switch
        {
            null => "null",
            double d => d.ToString("R", System.Globalization.CultureInfo.InvariantCulture),
            IFormattable f => f.ToString(null, System.Globalization.CultureInfo.InvariantCulture),
            _ => value.ToString(),
        });
        return this;
    }

    /// <summary>The content of every file the computation reads, in its order (so a changed picture changes the key).</summary>
    public YardstickKey WithFiles(YardstickCache cache, string datasetDir, IEnumerable<string> datasetFiles)
    {
        var text = new StringBuilder();
        foreach (var file in datasetFiles) text.Append(file).Append(':').Append(cache.FileHash(datasetDir, file)).Append(';');
        return With("files", Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString()))));
    }

    public string Digest() => Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(string.Join("\n", _parts)))).ToLowerInvariant();
}

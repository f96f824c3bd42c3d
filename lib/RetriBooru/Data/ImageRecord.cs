using RetriBooru.Settings;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace RetriBooru.Data;

/// <summary>
/// One annotated image, with the fields of the paper's annotation record. Paths are relative to the
/// dataset folder. Serialized one per line in <c>records.jsonl</c> (see <see cref="DatasetLayout"/>).
/// </summary>
public sealed record ImageRecord
{
    [JsonPropertyName("id")] public required string Id { get; init; }
    /// <summary>Image file, relative to the dataset folder (e.g. <c>images/000123.png</c>).</summary>
    [JsonPropertyName("image")] public required string Image { get; init; }
    /// <summary>Figure mask (white = figure), relative path, or null when the source has none.</summary>
    [JsonPropertyName("mask")] public string? Mask { get; init; }
    /// <summary>Character tag, e.g. <c>sendai_(kantai_collection)</c>; the identity.</summary>
    [JsonPropertyName("character")] public required string Character { get; init; }
    [JsonPropertyName("artists")] public IReadOnlyList<string> Artists { get; init; } = [];
    /// <summary>Face box, normalised (x, y, w, h) in [0, 1], or null.</summary>
    [JsonPropertyName("bbox")] public float[]? FaceBox { get; init; }
    /// <summary>Clothing tags (the paper spells the field <c>cloths</c>).</summary>
    [JsonPropertyName("cloths")] public IReadOnlyList<string> Clothes { get; init; } = [];
    /// <summary>Clothing identity within the character (filled by the identity index), e.g. <c>c3</c>.</summary>
    [JsonPropertyName("clothing_id")] public string? ClothingId { get; init; }
    /// <summary>Ids of other images of the same identity (filled by the identity index).</summary>
    [JsonPropertyName("similar")] public IReadOnlyList<string> Similar { get; init; } = [];
    /// <summary>The Danbooru-style tag string, comma separated.</summary>
    [JsonPropertyName("prompts")] public string Prompts { get; init; } = "";
    /// <summary>Dominant colour name of the clothing region (mask minus face box), or null without a mask.</summary>
    [JsonPropertyName("clothing_color")] public string? ClothingColor { get; init; }
    /// <summary>64-bit pHash of the image, 16 hex digits (near-duplicate detection).</summary>
    [JsonPropertyName("phash")] public string? Phash { get; init; }
    /// <summary>Split: <c>train</c>, <c>heldout</c> (held-out images of seen characters) or <c>unseen</c> (unseen characters).</summary>
    [JsonPropertyName("split")] public string? Split { get; init; }
    /// <summary>Path of the original file, relative to the source folder it was ingested from.</summary>
    [JsonPropertyName("source")] public string? Source { get; init; }
    [JsonPropertyName("width")] public int Width { get; init; }
    [JsonPropertyName("height")] public int Height { get; init; }

    public IEnumerable<string> PromptTags => Prompts.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
}

/// <summary>The JSON conventions of every file the workbench writes (snake_case fields, no indentation in JSONL).</summary>
public static class WorkbenchJson
{
    public static readonly JsonSerializerOptions Lines = new()
    {
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
        WriteIndented = false,
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower) },
    };

    public static readonly JsonSerializerOptions Pretty = new(Lines) { WriteIndented = true };
}

/// <summary>
/// The on-disk layout of a dataset folder, shared by the synthetic generator and the Danbooru ingester:
/// <code>
/// DIR/records.jsonl        one ImageRecord per line
/// DIR/images/ID.png        RGB image
/// DIR/masks/ID.png         figure mask (optional)
/// DIR/manifests/*.jsonl    training examples (target, references with concept words, prompt, split)
/// </code>
/// </summary>
public static class DatasetLayout
{
    public const string RecordsFile = "records.jsonl";
    public const string ImagesFolder = "images";
    public const string MasksFolder = "masks";
    public const string ManifestsFolder = "manifests";
    public const string CropsFolder = "crops";
    public const string StatsFile = "stats.json";

    /// <summary>Manifest file of a retrieval scheme (<c>a</c> or <c>b</c>), relative to the dataset folder.</summary>
    public static string ManifestPath(ReferenceScheme scheme) => $"{ManifestsFolder}/scheme_{scheme.Name()}.jsonl";

    public static IReadOnlyList<ImageRecord> ReadRecords(string datasetDir)
    {
        var path = Path.Combine(datasetDir, RecordsFile);
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: no records file; is {datasetDir} a dataset folder (made by `retribooru dataset synth` or `dataset build`)?", path);
        var records = new List<ImageRecord>();
        int lineNumber = 0;
        foreach (var line in File.ReadLines(path))
        {
            lineNumber++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            try
            {
                records.Add(JsonSerializer.Deserialize<ImageRecord>(line, WorkbenchJson.Lines)
                            ?? throw new JsonException("null record"));
            }
            catch (JsonException e)
            {
                throw new InvalidDataException($"{path}:{lineNumber}: bad record: {e.Message}", e);
            }
        }
        return records;
    }
}

using System.Text.Json;
using System.Text.Json.Serialization;
using RetriBooru.Data.Retrieval;

namespace RetriBooru.Data;

/// <summary>Size of one split.</summary>
public sealed record SplitStats([property: JsonPropertyName("images")] int Images, [property: JsonPropertyName("characters")] int Characters);

/// <summary>One manifest's summary.</summary>
public sealed record ManifestStats
{
    [JsonPropertyName("file")] public required string File { get; init; }
    [JsonPropertyName("examples")] public int Examples { get; init; }
    [JsonPropertyName("examples_by_split")] public required SortedDictionary<string, int> ExamplesBySplit { get; init; }
    /// <summary>Targets without a manifest line, by reason code.</summary>
    [JsonPropertyName("skipped")] public required SortedDictionary<string, int> Skipped { get; init; }
    /// <summary>Reference slots filled by repeating a candidate (fewer distinct candidates than requested).</summary>
    [JsonPropertyName("repeated_references")] public int RepeatedReferences { get; init; }
    [JsonPropertyName("leakage")] public required LeakageReport Leakage { get; init; }
}

/// <summary>The stats JSON of a built dataset (<c>manifests/stats.json</c>): reproducible, no timings or absolute paths.</summary>
public sealed record DatasetStats
{
    [JsonPropertyName("images_found")] public int ImagesFound { get; init; }
    [JsonPropertyName("images")] public int Images { get; init; }
    [JsonPropertyName("characters")] public int Characters { get; init; }
    [JsonPropertyName("clothing_identities")] public int ClothingIdentities { get; init; }
    [JsonPropertyName("with_mask")] public int WithMask { get; init; }
    [JsonPropertyName("with_face_box")] public int WithFaceBox { get; init; }
    [JsonPropertyName("splits")] public required SortedDictionary<string, SplitStats> Splits { get; init; }
    /// <summary>Images left out, by reason code (details per file in <c>build_report.jsonl</c>).</summary>
    [JsonPropertyName("rejected")] public required SortedDictionary<string, int> Rejected { get; init; }
    [JsonPropertyName("warnings")] public required SortedDictionary<string, int> Warnings { get; init; }
    [JsonPropertyName("ignored_files")] public required SortedDictionary<string, int> IgnoredFiles { get; init; }
    /// <summary>How many images have 1, 2, ... 14 and 15 or more similar images (as tabulated in the paper).</summary>
    [JsonPropertyName("similar_histogram")] public required SortedDictionary<string, int> SimilarHistogram { get; init; }
    [JsonPropertyName("manifests")] public required SortedDictionary<string, ManifestStats> Manifests { get; init; }
    [JsonPropertyName("options")] public required BuildOptions Options { get; init; }

    /// <summary>Pretty JSON without escaping '+' (the "15+" bin) and other harmless characters.</summary>
    public static readonly JsonSerializerOptions JsonOptions = new(WorkbenchJson.Pretty) { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static string HistogramBin(int similar) => similar >= 15 ? "15+" : similar.ToString("00", System.Globalization.CultureInfo.InvariantCulture);

    public static DatasetStats Read(string pathOrDatasetDir)
    {
        var path = Directory.Exists(pathOrDatasetDir) ? Path.Combine(pathOrDatasetDir, DatasetLayout.ManifestsFolder, DatasetLayout.StatsFile) : pathOrDatasetDir;
        if (!System.IO.File.Exists(path)) throw new FileNotFoundException($"{path}: no stats file; is {pathOrDatasetDir} a built dataset?", path);
        try { return JsonSerializer.Deserialize<DatasetStats>(System.IO.File.ReadAllText(path), WorkbenchJson.Pretty) ?? throw new JsonException("null"); }
        catch (JsonException e) { throw new InvalidDataException($"{path}: bad stats file: {e.Message}", e); }
    }
}

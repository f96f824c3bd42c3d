using RetriBooru.Settings;
using System.Text.Json;
using System.Text.Json.Serialization;
using RetriBooru.Runtime;

namespace RetriBooru.Data;

/// <summary>The concept words of references (every reference model is trained with both).</summary>
public static class Concepts
{
    public static readonly IReadOnlyList<Concept> All = Enum.GetValues<Concept>();
}

/// <summary>A reference condition: a crop file written in the dataset folder, its concept word and the image it was cut from.</summary>
public sealed record ReferenceImage
{
    /// <summary>Crop id, e.g. <c>000123_face</c>.</summary>
    [JsonPropertyName("id")] public required string Id { get; init; }
    /// <summary>Crop file, relative to the dataset folder (e.g. <c>crops/000123_face.png</c>).</summary>
    [JsonPropertyName("image")] public required string Image { get; init; }
    /// <summary>Concept word: <c>face</c> or <c>clothes</c>.</summary>
    [JsonPropertyName("concept")] public required Concept Concept { get; init; }
    /// <summary>Id of the image the crop was cut from.</summary>
    [JsonPropertyName("source_id")] public required string SourceId { get; init; }
}

/// <summary>One line of a manifest: a target image, its references with concept words, its prompt and split.</summary>
public sealed record TrainingExample
{
    [JsonPropertyName("target")] public required string Target { get; init; }
    /// <summary>Target image, relative to the dataset folder.</summary>
    [JsonPropertyName("image")] public required string Image { get; init; }
    /// <summary>Figure mask of the target (for the masked loss), or null.</summary>
    [JsonPropertyName("mask")] public string? Mask { get; init; }
    [JsonPropertyName("prompt")] public required string Prompt { get; init; }
    [JsonPropertyName("split")] public required string Split { get; init; }
    /// <summary>Retrieval scheme: <c>b</c> (leakage-free, other images) or <c>a</c> (crops of the target itself).</summary>
    [JsonPropertyName("scheme")] public required string Scheme { get; init; }
    [JsonPropertyName("character")] public required string Character { get; init; }
    [JsonPropertyName("clothing_id")] public required string ClothingId { get; init; }
    [JsonPropertyName("references")] public required IReadOnlyList<ReferenceImage> References { get; init; }
}

/// <summary>Reads and writes manifests (JSON Lines of <see cref="TrainingExample"/>).</summary>
public static class ManifestReader
{
    public static IReadOnlyList<TrainingExample> Read(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: manifest not found (build one with `retribooru dataset build` or `dataset synth`)", path);
        var examples = new List<TrainingExample>();
        int lineNumber = 0;
        foreach (var line in File.ReadLines(path))
        {
            lineNumber++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            TrainingExample example;
            try { example = JsonSerializer.Deserialize<TrainingExample>(line, WorkbenchJson.Lines) ?? throw new JsonException("null example"); }
            catch (JsonException e) { throw new InvalidDataException($"{path}:{lineNumber}: bad manifest line: {e.Message}", e); }
            // Every reference becomes an image slot of every batch this example is in.
            if (example.References.Count > SizeLimits.MaxReferencesPerExample)
                throw new InvalidDataException($"{path}:{lineNumber}: {example.References.Count} references, more than the {SizeLimits.MaxReferencesPerExample} an example may have");
            examples.Add(example);
        }
        return examples;
    }

    /// <summary>Reads a scheme's manifest from a dataset folder, optionally only one split.</summary>
    public static IReadOnlyList<TrainingExample> Read(string datasetDir, ReferenceScheme scheme, string? split = null)
    {
        var all = Read(Path.Combine(datasetDir, DatasetLayout.ManifestPath(scheme)));
        return split is null ? all : all.Where(e => e.Split == split).ToList();
    }

    /// <summary>Full path of a file named in a manifest or record; refused (InvalidDataException) when it leaves the dataset folder.</summary>
    public static string Resolve(string datasetDir, string relativePath) => SafePath.Under(datasetDir, relativePath, "dataset file");

    public static string Serialize(TrainingExample example) => JsonSerializer.Serialize(example, WorkbenchJson.Lines);

    public static void Write(string path, IEnumerable<TrainingExample> examples) => AtomicFile.WriteAllLines(path, examples.Select(Serialize));
}

using System.Text.Json;
using System.Text.Json.Serialization;
using RetriBooru.Runtime;

namespace RetriBooru.Data.Synth;

/// <summary>
/// Ground truth of one synthetic image: every attribute the generator chose, one JSON object per line in
/// <c>attributes.jsonl</c>. Categorical values come from the lists in <see cref="SynthVocabulary"/>.
/// </summary>
public sealed record SynthAttributes
{
    [JsonPropertyName("id")] public required string Id { get; init; }
    [JsonPropertyName("character")] public required string Character { get; init; }
    /// <summary>Outfit index within the character (the clothing identity), 0-based.</summary>
    [JsonPropertyName("outfit")] public int Outfit { get; init; }
    [JsonPropertyName("hair_color")] public required string HairColor { get; init; }
    [JsonPropertyName("hair_style")] public required string HairStyle { get; init; }
    [JsonPropertyName("eye_color")] public required string EyeColor { get; init; }
    [JsonPropertyName("skin_tone")] public required string SkinTone { get; init; }
    [JsonPropertyName("accessory")] public required string Accessory { get; init; }
    [JsonPropertyName("top")] public required string Top { get; init; }
    [JsonPropertyName("top_color")] public required string TopColor { get; init; }
    [JsonPropertyName("bottom")] public required string Bottom { get; init; }
    [JsonPropertyName("bottom_color")] public required string BottomColor { get; init; }
    [JsonPropertyName("pose")] public required string Pose { get; init; }
    [JsonPropertyName("expression")] public required string Expression { get; init; }
    [JsonPropertyName("background")] public required string Background { get; init; }
    [JsonPropertyName("artist")] public required string Artist { get; init; }
    [JsonPropertyName("position")] public required string Position { get; init; }
    [JsonPropertyName("scale")] public required string Scale { get; init; }
    /// <summary>Figure centre x and feet y, normalised to [0, 1].</summary>
    [JsonPropertyName("center_x")] public float CenterX { get; init; }
    [JsonPropertyName("feet_y")] public float FeetY { get; init; }
    /// <summary>Figure height as a fraction of the image height.</summary>
    [JsonPropertyName("figure_height")] public float FigureHeight { get; init; }
    [JsonPropertyName("lean_degrees")] public float LeanDegrees { get; init; }
    [JsonPropertyName("flipped")] public bool Flipped { get; init; }
    /// <summary>Id of the image this one is a near-duplicate of (repost, shift, recolour, crop), or null.</summary>
    [JsonPropertyName("variant_of")] public string? VariantOf { get; init; }
    [JsonPropertyName("variant_kind")] public string? VariantKind { get; init; }
}

/// <summary>Reads and writes <c>attributes.jsonl</c>.</summary>
public static class SynthAttributesFile
{
    public const string FileName = "attributes.jsonl";

    public static void Write(string path, IEnumerable<SynthAttributes> attributes) =>
        AtomicFile.WriteAllLines(path, attributes.Select(a => JsonSerializer.Serialize(a, WorkbenchJson.Lines)));

    /// <summary>Reads <paramref name="pathOrDatasetDir"/> (the file, or a dataset folder holding it).</summary>
    public static IReadOnlyList<SynthAttributes> Read(string pathOrDatasetDir)
    {
        var path = Directory.Exists(pathOrDatasetDir) ? Path.Combine(pathOrDatasetDir, FileName) : pathOrDatasetDir;
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: no ground-truth attributes (only synthetic datasets have them)", path);
        var result = new List<SynthAttributes>();
        int lineNumber = 0;
        foreach (var line in File.ReadLines(path))
        {
            lineNumber++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            try { result.Add(JsonSerializer.Deserialize<SynthAttributes>(line, WorkbenchJson.Lines) ?? throw new JsonException("null")); }
            catch (JsonException e) { throw new InvalidDataException($"{path}:{lineNumber}: bad attributes line: {e.Message}", e); }
        }
        return result;
    }

    /// <summary>The vocabulary of each categorical attribute, by JSON field name (for attribute probes).</summary>
    public static IReadOnlyDictionary<string, IReadOnlyList<string>> Vocabularies { get; } = new Dictionary<string, IReadOnlyList<string>>
    {
        ["hair_color"] = SynthVocabulary.HairColors.Select(c => c.Name).ToList(),
        ["hair_style"] = SynthVocabulary.HairStyles,
        ["eye_color"] = SynthVocabulary.EyeColors.Select(c => c.Name).ToList(),
        ["skin_tone"] = SynthVocabulary.SkinTones.Select(c => c.Name).ToList(),
        ["accessory"] = SynthVocabulary.Accessories,
        ["top"] = SynthVocabulary.TopGarments,
        ["top_color"] = SynthVocabulary.GarmentColors.Select(c => c.Name).ToList(),
        ["bottom"] = SynthVocabulary.BottomGarments,
        ["bottom_color"] = SynthVocabulary.GarmentColors.Select(c => c.Name).ToList(),
        ["pose"] = SynthVocabulary.Poses,
        ["expression"] = SynthVocabulary.Expressions,
        ["background"] = SynthVocabulary.Backgrounds,
        ["artist"] = SynthVocabulary.Artists,
        ["position"] = SynthVocabulary.Positions,
        ["scale"] = SynthVocabulary.Scales,
    };

    /// <summary>The value of a categorical attribute by its JSON field name.</summary>
    public static string Value(SynthAttributes a, string field) => field switch
    {
        "hair_color" => a.HairColor, "hair_style" => a.HairStyle, "eye_color" => a.EyeColor, "skin_tone" => a.SkinTone,
        "accessory" => a.Accessory, "top" => a.Top, "top_color" => a.TopColor, "bottom" => a.Bottom,
        "bottom_color" => a.BottomColor, "pose" => a.Pose, "expression" => a.Expression, "background" => a.Background,
        "artist" => a.Artist, "position" => a.Position, "scale" => a.Scale,
        _ => throw new ArgumentException($"unknown attribute '{field}'; known: {string.Join(", ", Vocabularies.Keys)}"),
    };
}

using System.Text.Json;
using System.Text.Json.Serialization;
using RetriBooru.Runtime;

namespace RetriBooru.Modeling.Tokenizers;

/// <summary>
/// One token per Danbooru tag, for the from-scratch setting: the vocabulary is built from a dataset's
/// comma-separated tag prompts (most frequent first, ties by name). Tags are lower-cased and spaces become
/// underscores, so "long hair" and "long_hair" are one tag. Unknown tags map to &lt;unk&gt;.
/// Stored as <c>tags.json</c> in the tokenizer folder.
/// </summary>
public sealed class TagTokenizer : IPromptTokenizer
{
    public const string FileName = "tags.json";
    public const int PadId = 0, StartId = 1, EndId = 2, UnknownId = 3;
    static readonly string[] Specials = ["<pad>", "<bos>", "<eos>", "<unk>"];

    readonly Dictionary<string, int> ids;

    public IReadOnlyList<string> Tokens { get; }
    public int MaxLength { get; }
    public int VocabSize => Tokens.Count;

    public TagTokenizer(IEnumerable<string> tags, int maxLength)
    {
        if (maxLength < 2) throw new ArgumentException($"tag tokenizer: max length {maxLength} leaves no room for start and end tokens");
        MaxLength = maxLength;
        var tokens = new List<string>(Specials);
        var seen = new HashSet<string>(Specials, StringComparer.Ordinal);
        foreach (var tag in tags.Select(Normalize).Where(t => t.Length > 0))
            if (seen.Add(tag)) tokens.Add(tag);
        Tokens = tokens;
        ids = tokens.Select((t, i) => (t, i)).ToDictionary(p => p.t, p => p.i, StringComparer.Ordinal);
    }

    /// <summary>Builds the vocabulary from prompts: tags seen at least <paramref name="minCount"/> times, most frequent first.</summary>
    public static TagTokenizer Build(IEnumerable<string> prompts, int maxLength, int minCount = 1)
    {
        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var prompt in prompts)
            foreach (var tag in SplitTags(prompt))
                counts[tag] = counts.GetValueOrDefault(tag) + 1;
        var ordered = counts.Where(kv => kv.Value >= minCount).OrderByDescending(kv => kv.Value).ThenBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => kv.Key);
        return new TagTokenizer(ordered, maxLength);
    }

    public static string Normalize(string tag) => string.Join('_', tag.Trim().ToLowerInvariant().Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries));

    public static IEnumerable<string> SplitTags(string prompt) =>
        prompt.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(Normalize).Where(t => t.Length > 0);

    public int IdOf(string tag) => ids.TryGetValue(Normalize(tag), out var id) ? id : UnknownId;

    public long[] Encode(string prompt)
    {
        var result = new long[MaxLength];
        result[0] = StartId;
        int n = 1;
        foreach (var tag in SplitTags(prompt))
        {
            if (n >= MaxLength - 1) break;
            result[n++] = IdOf(tag);
        }
        result[n] = EndId;
        return result;
    }

    sealed record TagFile([property: JsonPropertyName("max_length")] int MaxLength, [property: JsonPropertyName("tokens")] List<string> Tokens);

    public void Save(string folder)
    {
        Directory.CreateDirectory(folder);
        AtomicFile.WriteAllText(Path.Combine(folder, FileName), ToJson());
    }

    public string ToJson() => JsonSerializer.Serialize(new TagFile(MaxLength, Tokens.ToList()), WorkbenchJsonIndented);

    public static TagTokenizer FromJson(string json, string source)
    {
        TagFile? file;
        try { file = JsonSerializer.Deserialize<TagFile>(json); }
        catch (JsonException e) { throw new InvalidDataException($"{source}: not a tag vocabulary ({e.Message})", e); }
        if (file?.Tokens is null || file.Tokens.Count < Specials.Length || !file.Tokens.Take(Specials.Length).SequenceEqual(Specials))
            throw new InvalidDataException($"{source}: tag vocabulary must start with {string.Join(", ", Specials)}");
        SizeLimits.Require(file.Tokens.Count, Specials.Length, SizeLimits.MaxVocabSize, source, "tokens (count)");
        SizeLimits.Require(file.MaxLength, 2, SizeLimits.MaxPositions, source, "max_length");
        return new TagTokenizer(file.Tokens.Skip(Specials.Length), file.MaxLength);
    }

    public static TagTokenizer Load(string folder)
    {
        var path = Path.Combine(folder, FileName);
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: tag vocabulary not found", path);
        return FromJson(RegularFile.ReadAllText(path, "tag vocabulary", SizeLimits.MaxTokenizerFileBytes), path);
    }

    static readonly JsonSerializerOptions WorkbenchJsonIndented = new() { WriteIndented = true };
}

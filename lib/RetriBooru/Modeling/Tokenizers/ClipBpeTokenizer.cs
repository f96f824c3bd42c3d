using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using RetriBooru.Runtime;

namespace RetriBooru.Modeling.Tokenizers;

/// <summary>
/// The CLIP byte-level BPE tokenizer, reading <c>vocab.json</c> and <c>merges.txt</c> from an SD <c>tokenizer/</c>
/// folder or an HF CLIP checkpoint folder: it feeds the SD text encoder and the CLIP metrics' text tower. Text is HTML-unescaped, whitespace-collapsed and
/// lower-cased, split by CLIP's pattern, mapped byte-to-unicode, and merged by rank with a <c>&lt;/w&gt;</c>
/// end-of-word marker. Sequences are <c>&lt;|startoftext|&gt;</c> tokens <c>&lt;|endoftext|&gt;</c>, padded with the end token.
/// </summary>
public sealed partial class ClipBpeTokenizer : IPromptTokenizer
{
    public const string StartToken = "<|startoftext|>";
    public const string EndToken = "<|endoftext|>";
    /// <summary>CLIP uses only the first 49152 - 256 - 2 merges of its merges file.</summary>
    const int MaxMerges = 49152 - 256 - 2;

    readonly Dictionary<string, int> vocab;
    readonly Dictionary<(string, string), int> mergeRanks;
    readonly string[] mergeLines;
    // Concurrent: sampling and training shards encode prompts from several threads.
    readonly System.Collections.Concurrent.ConcurrentDictionary<string, string[]> cache = new(StringComparer.Ordinal);
    static readonly string[] ByteToUnicode = BuildByteToUnicode();

    public int MaxLength { get; }
    public int VocabSize => vocab.Count;
    public int StartId { get; }
    public int EndId { get; }

    public ClipBpeTokenizer(Dictionary<string, int> vocab, IReadOnlyList<string> merges, int maxLength = 77, string source = "tokenizer")
    {
        this.vocab = vocab;
        MaxLength = maxLength;
        if (maxLength < 2) throw new ArgumentException($"{source}: max length {maxLength} leaves no room for start and end tokens");
        mergeLines = merges.ToArray();
        mergeRanks = new Dictionary<(string, string), int>();
        for (int i = 0; i < merges.Count; i++)
        {
            var parts = merges[i].Split(' ');
            if (parts.Length != 2) throw new InvalidDataException($"{source}: merge {i + 1} '{merges[i]}' is not two symbols");
            mergeRanks.TryAdd((parts[0], parts[1]), i);
        }
        StartId = vocab.TryGetValue(StartToken, out var s) ? s : throw new InvalidDataException($"{source}: vocabulary lacks {StartToken}");
        EndId = vocab.TryGetValue(EndToken, out var e) ? e : throw new InvalidDataException($"{source}: vocabulary lacks {EndToken}");
    }

    /// <summary>Loads <c>vocab.json</c> and <c>merges.txt</c> from a folder.</summary>
    public static ClipBpeTokenizer Load(string folder, int maxLength = 77)
    {
        var vocabPath = Path.Combine(folder, "vocab.json");
        var mergesPath = Path.Combine(folder, "merges.txt");
        if (!File.Exists(vocabPath)) throw new FileNotFoundException($"{vocabPath}: CLIP tokenizer vocabulary not found", vocabPath);
        if (!File.Exists(mergesPath)) throw new FileNotFoundException($"{mergesPath}: CLIP tokenizer merges not found", mergesPath);
        Dictionary<string, int> vocab;
        try { vocab = JsonSerializer.Deserialize<Dictionary<string, int>>(RegularFile.ReadAllText(vocabPath, "CLIP vocabulary", SizeLimits.MaxTokenizerFileBytes)) ?? throw new JsonException("null"); }
        catch (JsonException e) { throw new InvalidDataException($"{vocabPath}: not a JSON token->id object ({e.Message})", e); }
        SizeLimits.Require(vocab.Count, 1, SizeLimits.MaxVocabSize, vocabPath, "tokens (count)");
        if (vocab.Values.Any(id => id is < 0 or >= SizeLimits.MaxVocabSize))
            throw new InvalidDataException($"{vocabPath}: token id {vocab.Values.First(id => id is < 0 or >= SizeLimits.MaxVocabSize)} is outside [0, {SizeLimits.MaxVocabSize})");
        var lines = RegularFile.ReadAllText(mergesPath, "CLIP merges file", SizeLimits.MaxTokenizerFileBytes).Split('\n').Select(l => l.TrimEnd('\r')).ToArray();
        // The first line is a "#version" comment; blank trailing lines are ignored.
        var merges = lines.Skip(lines.Length > 0 && lines[0].StartsWith("#version", StringComparison.Ordinal) ? 1 : 0)
            .Where(l => l.Length > 0).Take(MaxMerges).ToList();
        return new ClipBpeTokenizer(vocab, merges, maxLength, folder);
    }

    public void Save(string folder)
    {
        Directory.CreateDirectory(folder);
        AtomicFile.WriteAllText(Path.Combine(folder, "vocab.json"), JsonSerializer.Serialize(vocab.OrderBy(kv => kv.Value).ToDictionary(kv => kv.Key, kv => kv.Value)));
        AtomicFile.WriteAllLines(Path.Combine(folder, "merges.txt"), mergeLines.Prepend("#version: 0.2"));
    }

    [GeneratedRegex(@"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+", RegexOptions.IgnoreCase)]
    private static partial Regex Pattern();

    [GeneratedRegex(@"\s+")]
    private static partial Regex Whitespace();

    /// <summary>BPE tokens of a text, without start/end tokens.</summary>
    public IReadOnlyList<int> Tokenize(string text)
    {
        var cleaned = Whitespace().Replace(WebUtility.HtmlDecode(WebUtility.HtmlDecode(text)), " ").Trim().ToLowerInvariant();
        var ids = new List<int>();
        foreach (Match match in Pattern().Matches(cleaned))
        {
            var mapped = string.Concat(Encoding.UTF8.GetBytes(match.Value).Select(b => ByteToUnicode[b]));
            foreach (var piece in Bpe(mapped))
                ids.Add(vocab.TryGetValue(piece, out var id) ? id : throw new InvalidDataException($"BPE piece '{piece}' is not in the vocabulary (vocab.json and merges.txt disagree)"));
        }
        return ids;
    }

    public long[] Encode(string prompt)
    {
        var tokens = Tokenize(prompt);
        var ids = new long[MaxLength];
        Array.Fill(ids, EndId);
        ids[0] = StartId;
        int n = Math.Min(tokens.Count, MaxLength - 2);
        for (int i = 0; i < n; i++) ids[i + 1] = tokens[i];
        ids[n + 1] = EndId;
        return ids;
    }

    string[] Bpe(string token)
    {
        if (token is StartToken or EndToken) return [token];
        if (cache.TryGetValue(token, out var cached)) return cached;
        // Symbols are text elements of the byte-mapped string (all single UTF-16 chars by construction); the last carries </w>.
        var word = token.Select(c => c.ToString()).ToList();
        word[^1] += "</w>";
        while (word.Count > 1)
        {
            int bestRank = int.MaxValue, bestAt = -1;
            for (int i = 0; i < word.Count - 1; i++)
                if (mergeRanks.TryGetValue((word[i], word[i + 1]), out var rank) && rank < bestRank) { bestRank = rank; bestAt = i; }
            if (bestAt < 0) break;
            var (first, second) = (word[bestAt], word[bestAt + 1]);
            var merged = new List<string>(word.Count);
            for (int i = 0; i < word.Count; i++)
            {
                if (i < word.Count - 1 && word[i] == first && word[i + 1] == second) { merged.Add(first + second); i++; }
                else merged.Add(word[i]);
            }
            word = merged;
        }
        var result = word.ToArray();
        if (cache.Count < 100_000) cache[token] = result;
        return result;
    }

    /// <summary>GPT-2/CLIP byte-to-unicode table: printable bytes map to themselves, the rest to 256+n.</summary>
    static string[] BuildByteToUnicode()
    {
        var table = new string[256];
        var direct = new HashSet<int>();
        for (int b = '!'; b <= '~'; b++) direct.Add(b);
        for (int b = 0xA1; b <= 0xAC; b++) direct.Add(b);
        for (int b = 0xAE; b <= 0xFF; b++) direct.Add(b);
        int n = 0;
        for (int b = 0; b < 256; b++)
            table[b] = direct.Contains(b) ? ((char)b).ToString() : ((char)(256 + n++)).ToString();
        return table;
    }
}

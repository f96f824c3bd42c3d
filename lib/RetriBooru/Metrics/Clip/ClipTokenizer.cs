using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using RetriBooru.Runtime;

namespace RetriBooru.Metrics.Clip;

/// <summary>
/// CLIP's byte-level BPE tokenizer, read from the vocab.json and merges.txt that ship with every HF CLIP checkpoint.
/// Text is HTML-unescaped, whitespace-collapsed and lower-cased, split with CLIP's pattern, each piece mapped through
/// the byte-to-unicode table, merged by BPE rank with "&lt;/w&gt;" marking the word end; the result is
/// [startoftext] + ids (truncated) + [endoftext], padded with endoftext to the context length.
/// </summary>
public sealed partial class ClipTokenizer
{
    public const string StartToken = "<|startoftext|>";
    public const string EndToken = "<|endoftext|>";

    readonly Dictionary<string, int> _vocab;
    readonly Dictionary<(string, string), int> _ranks = new();
    readonly Dictionary<string, string[]> _cache = new();
    static readonly string[] ByteToUnicode = BuildByteToUnicode();

    public int StartId { get; }
    public int EndId { get; }
    public int ContextLength { get; }

    public ClipTokenizer(IReadOnlyDictionary<string, int> vocab, IEnumerable<string> merges, int contextLength = 77, string sourceName = "CLIP tokenizer")
    {
        _vocab = new Dictionary<string, int>(vocab);
        ContextLength = contextLength;
        int rank = 0;
        foreach (var line in merges)
        {
            if (line.StartsWith("#version", StringComparison.Ordinal) || string.IsNullOrWhiteSpace(line)) continue;
            var parts = line.Split(' ');
            if (parts.Length != 2) throw new InvalidDataException($"{sourceName}: merges line {rank + 1} is not two symbols: '{line}'");
            _ranks.TryAdd((parts[0], parts[1]), rank++);
        }
        StartId = _vocab.TryGetValue(StartToken, out var s) ? s : throw new InvalidDataException($"{sourceName}: vocabulary has no {StartToken}");
        EndId = _vocab.TryGetValue(EndToken, out var e) ? e : throw new InvalidDataException($"{sourceName}: vocabulary has no {EndToken}");
    }

    /// <summary>Reads DIR/vocab.json and DIR/merges.txt (the HF CLIP tokenizer files).</summary>
    public static ClipTokenizer FromDirectory(string directory, int contextLength = 77)
    {
        var vocabPath = Path.Combine(directory, "vocab.json");
        var mergesPath = Path.Combine(directory, "merges.txt");
        foreach (var p in new[] { vocabPath, mergesPath })
            if (!File.Exists(p)) throw new FileNotFoundException($"{p}: CLIP tokenizer file not found", p);
        Dictionary<string, int> vocab;
        try { vocab = JsonSerializer.Deserialize<Dictionary<string, int>>(RegularFile.ReadAllText(vocabPath, "CLIP vocabulary", SizeLimits.MaxTokenizerFileBytes)) ?? throw new InvalidDataException($"{vocabPath}: empty vocabulary"); }
        catch (JsonException ex) { throw new InvalidDataException($"{vocabPath}: not a token -> id JSON object: {ex.Message}", ex); }
        SizeLimits.Require(vocab.Count, 1, SizeLimits.MaxVocabSize, vocabPath, "tokens (count)");
        var merges = RegularFile.ReadAllText(mergesPath, "CLIP merges file", SizeLimits.MaxTokenizerFileBytes).Split('\n').Select(l => l.TrimEnd('\r'));
        return new ClipTokenizer(vocab, merges, contextLength, mergesPath);
    }

    /// <summary>Token ids of exactly <see cref="ContextLength"/> entries.</summary>
    public int[] Encode(string text)
    {
        var ids = new List<int> { StartId };
        foreach (Match m in Pieces().Matches(Clean(text)))
        {
            var mapped = string.Concat(Encoding.UTF8.GetBytes(m.Value).Select(b => ByteToUnicode[b]));
            foreach (var symbol in Bpe(mapped))
                ids.Add(_vocab.TryGetValue(symbol, out var id) ? id : throw new InvalidDataException($"token '{symbol}' (from '{m.Value}') is not in the CLIP vocabulary"));
        }
        if (ids.Count > ContextLength - 1) ids.RemoveRange(ContextLength - 1, ids.Count - (ContextLength - 1));
        ids.Add(EndId);
        while (ids.Count < ContextLength) ids.Add(EndId);
        return ids.ToArray();
    }

    static string Clean(string text)
    {
        var unescaped = WebUtility.HtmlDecode(WebUtility.HtmlDecode(text));
        return string.Join(' ', unescaped.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries)).ToLowerInvariant();
    }

    string[] Bpe(string token)
    {
        if (_cache.TryGetValue(token, out var cached)) return cached;
        var word = token.Select(c => c.ToString()).ToList();
        if (word.Count == 0) return [];
        word[^1] += "</w>";
        while (word.Count > 1)
        {
            int best = -1, bestRank = int.MaxValue;
            for (int i = 0; i < word.Count - 1; i++)
                if (_ranks.TryGetValue((word[i], word[i + 1]), out var r) && r < bestRank) (best, bestRank) = (i, r);
            if (best < 0) break;
            // Merge every occurrence of the best pair, left to right, as the reference implementation does.
            var (first, second) = (word[best], word[best + 1]);
            var merged = new List<string>(word.Count);
            for (int i = 0; i < word.Count; i++)
            {
                if (i < word.Count - 1 && word[i] == first && word[i + 1] == second) { merged.Add(first + second); i++; }
                else merged.Add(word[i]);
            }
            word = merged;
        }
        return _cache[token] = word.ToArray();
    }

    /// <summary>GPT-2/CLIP byte -> printable unicode character table.</summary>
    static string[] BuildByteToUnicode()
    {
        var printable = Enumerable.Range('!', '~' - '!' + 1).Concat(Enumerable.Range('¡', '¬' - '¡' + 1)).Concat(Enumerable.Range('®', 'ÿ' - '®' + 1)).ToHashSet();
        var table = new string[256];
        int extra = 0;
        for (int b = 0; b < 256; b++) table[b] = ((char)(printable.Contains(b) ? b : 256 + extra++)).ToString();
        return table;
    }

    [GeneratedRegex(@"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+", RegexOptions.IgnoreCase)]
    private static partial Regex Pieces();
}

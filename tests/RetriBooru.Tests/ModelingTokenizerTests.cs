using System.Text.Json;
using RetriBooru.Modeling.Tokenizers;
using Xunit;

namespace RetriBooru.Tests;

public class ModelingTokenizerTests
{
    static ClipBpeTokenizer SmallClip(TempDir dir)
    {
        var vocab = new List<string>();
        // Byte-level alphabet (as CLIP's vocab.json starts), each symbol alone and as word end.
        var printable = Enumerable.Range('!', '~' - '!' + 1).Concat(Enumerable.Range(0xA1, 0xAC - 0xA1 + 1)).Concat(Enumerable.Range(0xAE, 0xFF - 0xAE + 1)).Select(c => ((char)c).ToString()).ToList();
        vocab.AddRange(printable);
        vocab.AddRange(printable.Select(c => c + "</w>"));
        string[] merges = ["h e", "l l", "he ll", "hell o</w>", "w o", "r l", "wo rl", "worl d</w>"];
        vocab.AddRange(["he", "ll", "hell", "hello</w>", "wo", "rl", "worl", "world</w>", ClipBpeTokenizer.StartToken, ClipBpeTokenizer.EndToken]);
        var folder = Path.Combine(dir.Path, "tokenizer");
        Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, "vocab.json"), JsonSerializer.Serialize(vocab.Select((t, i) => (t, i)).ToDictionary(p => p.t, p => p.i)));
        File.WriteAllLines(Path.Combine(folder, "merges.txt"), merges.Prepend("#version: 0.2"));
        return ClipBpeTokenizer.Load(folder);
    }

    [Fact]
    public void Clip_bpe_merges_by_rank_lowercases_and_maps_bytes()
    {
        using var dir = new TempDir();
        var tokenizer = SmallClip(dir);
        var vocab = JsonSerializer.Deserialize<Dictionary<string, int>>(File.ReadAllText(Path.Combine(dir.Path, "tokenizer", "vocab.json")))!;
        Assert.Equal(new[] { vocab["hello</w>"], vocab["world</w>"], vocab["!</w>"] }, tokenizer.Tokenize("  Hello \n WORLD!"));
        // "hel" has no merge for "hel"+"l"... it stops at the best available merges: "he" + "l</w>".
        Assert.Equal(new[] { vocab["he"], vocab["l</w>"] }, tokenizer.Tokenize("hel"));
        // Non-ASCII: UTF-8 bytes C3 A9 map to the printable stand-ins U+00C3 and U+00A9.
        Assert.Equal(new[] { vocab["\u00C3"], vocab["\u00A9</w>"] }, tokenizer.Tokenize("é"));
        // HTML entities are unescaped first; "'s" is its own token.
        Assert.Equal(tokenizer.Tokenize("hello&amp;"), tokenizer.Tokenize("hello&"));

        var ids = tokenizer.Encode("hello world");
        Assert.Equal(77, ids.Length);
        Assert.Equal(new long[] { tokenizer.StartId, vocab["hello</w>"], vocab["world</w>"], tokenizer.EndId, tokenizer.EndId }, ids.Take(5));
        Assert.All(ids.Skip(3), id => Assert.Equal(tokenizer.EndId, id));
        // Truncation keeps the start and end tokens.
        var longIds = tokenizer.Encode(string.Join(" ", Enumerable.Repeat("hello", 100)));
        Assert.Equal(tokenizer.StartId, longIds[0]);
        Assert.Equal(tokenizer.EndId, longIds[76]);
        Assert.Equal(vocab["hello</w>"], longIds[75]);

        // Saving writes the same files back.
        tokenizer.Save(Path.Combine(dir.Path, "copy"));
        Assert.Equal(tokenizer.Encode("hello world!"), ClipBpeTokenizer.Load(Path.Combine(dir.Path, "copy")).Encode("hello world!"));
    }

    [Fact]
    public void Clip_tokenizer_reports_missing_files()
    {
        using var dir = new TempDir();
        var error = Assert.Throws<FileNotFoundException>(() => ClipBpeTokenizer.Load(dir.Path));
        Assert.Contains("vocab.json", error.Message);
    }

    [Fact]
    public void Tag_tokenizer_builds_by_frequency_and_encodes_one_token_per_tag()
    {
        var tokenizer = TagTokenizer.Build(["1girl, red hair, smile", "1girl, Red_Hair", "1boy, smile, 1girl"], maxLength: 6);
        Assert.Equal(["<pad>", "<bos>", "<eos>", "<unk>", "1girl", "red_hair", "smile", "1boy"], tokenizer.Tokens);
        Assert.Equal(new long[] { 1, 4, 5, 3, 2, 0 }, tokenizer.Encode("1girl, red hair, never_seen"));
        Assert.Equal(new long[] { 1, 2, 0, 0, 0, 0 }, tokenizer.Encode(""));
        Assert.Equal(new long[] { 1, 4, 5, 6, 7, 2 }, tokenizer.Encode("1girl, red_hair, smile, 1boy, 1girl, smile"));

        using var dir = new TempDir();
        tokenizer.Save(dir.Path);
        var loaded = TagTokenizer.Load(dir.Path);
        Assert.Equal(tokenizer.Tokens, loaded.Tokens);
        Assert.Equal(6, loaded.MaxLength);
        File.WriteAllText(Path.Combine(dir.Path, TagTokenizer.FileName), "{\"max_length\": 4, \"tokens\": [\"a\"]}");
        Assert.Contains(TagTokenizer.FileName, Assert.Throws<InvalidDataException>(() => TagTokenizer.Load(dir.Path)).Message);
    }
}

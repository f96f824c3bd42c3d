using RetriBooru.Settings;
using RetriBooru.Data;
using RetriBooru.Data.Ingest;
using SkiaSharp;
using Xunit;

namespace RetriBooru.Tests;

public class DataIngestTests
{
    static readonly SKColor Red = new(220, 30, 40), Blue = new(30, 70, 220), Green = new(30, 160, 60);

    [Fact]
    public void Sidecar_tags_give_character_artist_clothing_and_prompt()
    {
        using var src = new TempDir();
        using var outDir = new TempDir();
        for (int i = 0; i < 3; i++)
            DataTestFiles.WriteFigure(src.Path, $"p{i}", "character:sendai_(kantai_collection), artist:someone, 1girl, serafuku, pleated_skirt, Red Skirt, smile", Red, offset: i);
        var result = DatasetBuilder.Build(src.Path, outDir.Path, new BuildOptions { UnseenFraction = 0, HeldoutFraction = 0 });
        Assert.Equal(3, result.Records.Count);
        var r = result.Records[0];
        Assert.Equal("sendai_(kantai_collection)", r.Character);
        Assert.Equal(["someone"], r.Artists);
        Assert.Equal(["pleated_skirt", "red_skirt", "serafuku"], r.Clothes);
        Assert.Equal("sendai_(kantai_collection), 1girl, serafuku, pleated_skirt, red_skirt, smile", r.Prompts);
        Assert.Equal("red", r.ClothingColor);
        Assert.Equal(["p1", "p2"], r.Similar);
        Assert.NotNull(r.FaceBox);
        Assert.True(File.Exists(Path.Combine(outDir.Path, r.Image)));
        Assert.True(File.Exists(Path.Combine(outDir.Path, r.Mask!)));
        Assert.Equal(result.Records.Select(x => System.Text.Json.JsonSerializer.Serialize(x, WorkbenchJson.Lines)),
            DatasetLayout.ReadRecords(outDir.Path).Select(x => System.Text.Json.JsonSerializer.Serialize(x, WorkbenchJson.Lines)));
    }

    [Fact]
    public void Danbooru_post_json_per_file_and_json_lines_batches_are_read()
    {
        using var src = new TempDir();
        using var outDir = new TempDir();
        // Per-file JSON next to the image.
        for (int i = 0; i < 2; i++)
        {
            DataTestFiles.WriteFigure(src.Path, $"a{i}", "", Blue, offset: i);
            File.Delete(Path.Combine(src.Path, $"a{i}.txt"));
            File.WriteAllText(Path.Combine(src.Path, $"a{i}.json"),
                $$"""{"id": {{100 + i}}, "tag_string_general": "1girl blue_dress dress", "tag_string_character": "hina", "tag_string_artist": "artist_x"}""");
        }
        // Danbooru2019 layout: images named by post id, metadata as JSON Lines with a `tags` array.
        Directory.CreateDirectory(Path.Combine(src.Path, "original", "0001"));
        Directory.CreateDirectory(Path.Combine(src.Path, "metadata"));
        var lines = new List<string>();
        for (int i = 0; i < 2; i++)
        {
            DataTestFiles.WriteFigure(Path.Combine(src.Path, "original", "0001"), $"{200 + i}", "", Green, offset: i);
            File.Delete(Path.Combine(src.Path, "original", "0001", $"{200 + i}.txt"));
            lines.Add($$"""{"id":"{{200 + i}}","tags":[{"name":"kanna","category":"4"},{"name":"green_hoodie","category":"0"},{"name":"hoodie","category":"0"},{"name":"painter","category":"1"}]}""");
        }
        File.WriteAllLines(Path.Combine(src.Path, "metadata", "posts.json"), lines);
        var result = DatasetBuilder.Build(src.Path, outDir.Path, new BuildOptions { UnseenFraction = 0, HeldoutFraction = 0 });
        Assert.Equal(["100", "101", "200", "201"], result.Records.Select(r => r.Id));
        var hina = result.Records.Single(r => r.Id == "100");
        Assert.Equal("hina", hina.Character);
        Assert.Equal(["artist_x"], hina.Artists);
        Assert.Equal(["blue_dress", "dress"], hina.Clothes);
        var kanna = result.Records.Single(r => r.Id == "201");
        Assert.Equal("kanna", kanna.Character);
        Assert.Equal(["painter"], kanna.Artists);
        Assert.Equal("original/0001/201.png", kanna.Source);
    }

    [Fact]
    public void Without_masks_colour_is_unknown_and_without_face_boxes_no_face_reference_exists()
    {
        using var src = new TempDir();
        using var outDir = new TempDir();
        for (int i = 0; i < 3; i++) DataTestFiles.WriteFigure(src.Path, $"m{i}", "character:a, shirt, red_shirt", Red, offset: i, mask: false);
        for (int i = 0; i < 3; i++) DataTestFiles.WriteFigure(src.Path, $"f{i}", "character:b, shirt, blue_shirt", Blue, offset: i, face: false);
        var result = DatasetBuilder.Build(src.Path, outDir.Path, new BuildOptions { UnseenFraction = 0, HeldoutFraction = 0 });
        Assert.Equal(6, result.Records.Count);
        Assert.All(result.Records.Where(r => r.Character == "a"), r => { Assert.Null(r.Mask); Assert.Null(r.ClothingColor); Assert.NotNull(r.FaceBox); });
        Assert.All(result.Records.Where(r => r.Character == "b"), r => { Assert.NotNull(r.Mask); Assert.Null(r.FaceBox); });
        var manifest = result.Manifests["b"];
        // Character a still gets face and clothes references (clothes crop = image below the face box).
        Assert.Equal(3, manifest.Count(e => e.Character == "a"));
        Assert.All(manifest.Where(e => e.Character == "a"), e => Assert.Equal(4, e.References.Count));
        // Character b has no face boxes, so it cannot get face references: skipped with a counted reason.
        Assert.DoesNotContain(manifest, e => e.Character == "b");
        Assert.Equal(3, result.Stats.Manifests["b"].Skipped["no_face_reference"]);
        // With face references switched off, b is usable again.
        using var clothesOnly = new TempDir();
        var second = DatasetBuilder.Build(src.Path, clothesOnly.Path, new BuildOptions { UnseenFraction = 0, HeldoutFraction = 0, FaceReferences = 0 });
        Assert.Equal(6, second.Manifests["b"].Count);
        Assert.All(second.Manifests["b"], e => Assert.All(e.References, r => Assert.Equal(Concept.Clothes, r.Concept)));
    }

    [Fact]
    public void Clothing_identity_splits_by_tags_and_colour_and_rejects_what_it_cannot_determine()
    {
        using var src = new TempDir();
        using var outDir = new TempDir();
        // Same tags, two measured colours -> two clusters; an unmasked image with those tags is ambiguous.
        for (int i = 0; i < 2; i++) DataTestFiles.WriteFigure(src.Path, $"r{i}", "character:c, dress", Red, offset: i);
        for (int i = 0; i < 2; i++) DataTestFiles.WriteFigure(src.Path, $"g{i}", "character:c, dress", Green, offset: i);
        DataTestFiles.WriteFigure(src.Path, "u0", "character:c, dress", Blue, mask: false);
        DataTestFiles.WriteFigure(src.Path, "single", "character:c, kimono", Blue);
        DataTestFiles.WriteFigure(src.Path, "naked", "character:c, smile", Blue);
        DataTestFiles.WriteFigure(src.Path, "nobody", "1girl, dress", Red);
        DataTestFiles.WriteFigure(src.Path, "pair", "character:c, character:d, dress", Red);
        var result = DatasetBuilder.Build(src.Path, outDir.Path, new BuildOptions { UnseenFraction = 0, HeldoutFraction = 0 });
        Assert.Equal(["g0", "g1", "r0", "r1"], result.Records.Select(r => r.Id));
        Assert.NotEqual(result.Records.Single(r => r.Id == "r0").ClothingId, result.Records.Single(r => r.Id == "g0").ClothingId);
        var codes = result.Problems.Where(p => p.Severity == ProblemSeverity.Rejected).ToDictionary(p => p.Path, p => p.Code);
        Assert.Equal("clothing_ambiguous", codes["u0.png"]);
        Assert.Equal("singleton_identity", codes["single.png"]);
        Assert.Equal("no_clothing_tags", codes["naked.png"]);
        Assert.Equal("no_character_tag", codes["nobody.png"]);
        Assert.Equal("multiple_characters", codes["pair.png"]);
        Assert.Equal(1, result.Stats.Rejected["clothing_ambiguous"]);
    }

    [Fact]
    public void Clothing_tag_rules()
    {
        Assert.True(ClothingTags.IsClothing("serafuku"));
        Assert.True(ClothingTags.IsClothing("red_pleated_skirt"));
        Assert.True(ClothingTags.IsClothing("school_uniform"));
        Assert.False(ClothingTags.IsClothing("hair_ribbon"));
        Assert.False(ClothingTags.IsClothing("glasses"));
        Assert.False(ClothingTags.IsClothing("no_shoes"));
        Assert.False(ClothingTags.IsClothing("skirt_lift"));
    }

    [Fact]
    public void Synthetic_clothing_clusters_are_pure_and_similar_lists_are_consistent()
    {
        using var data = new SmallSynthDataset();
        var truth = data.Attributes.ToDictionary(a => a.Id);
        var records = data.Result.Records;
        Assert.True(records.Count >= 0.8 * truth.Count, $"only {records.Count} of {truth.Count} images kept");
        // Every cluster holds a single ground-truth outfit.
        foreach (var cluster in records.GroupBy(r => (r.Character, r.ClothingId)))
            Assert.Single(cluster.Select(r => truth[r.Id].Outfit).Distinct());
        var byId = records.ToDictionary(r => r.Id);
        foreach (var r in records)
        {
            Assert.NotEmpty(r.Similar);
            Assert.DoesNotContain(r.Id, r.Similar);
            Assert.All(r.Similar, s => { Assert.Equal(r.ClothingId, byId[s].ClothingId); Assert.Equal(r.Character, byId[s].Character); Assert.Contains(r.Id, byId[s].Similar); });
        }
        Assert.Equal(records.Count, data.Result.Stats.SimilarHistogram.Values.Sum());
    }
}

using System.Security.Cryptography;
using RetriBooru.Data;
using RetriBooru.Data.Synth;
using RetriBooru.Imaging;
using Xunit;

namespace RetriBooru.Tests;

public class DataSynthTests
{
    static readonly SynthOptions Tiny = new() { Characters = 3, ImagesPerCharacter = 6, OutfitsPerCharacter = 2, Size = 48, Seed = 11 };

    static Dictionary<string, string> Hashes(string dir) =>
        Directory.EnumerateFiles(dir).ToDictionary(f => Path.GetFileName(f), f => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(f))));

    [Fact]
    public void Same_seed_gives_byte_identical_files_and_another_seed_does_not()
    {
        using var a = new TempDir();
        using var b = new TempDir();
        using var c = new TempDir();
        SynthGenerator.Generate(a.Path, Tiny);
        SynthGenerator.Generate(b.Path, Tiny);
        SynthGenerator.Generate(c.Path, Tiny with { Seed = 12 });
        var ha = Hashes(a.Path);
        Assert.Equal(3 * 6 * 4 + 2, ha.Count); // png, txt, mask, face per image + attributes + options
        Assert.Equal(ha, Hashes(b.Path));
        var hc = Hashes(c.Path);
        Assert.NotEqual(ha["000001.png"], hc["000001.png"]);
    }

    [Fact]
    public void Writes_the_ingestion_format_with_ground_truth_from_the_vocabularies()
    {
        using var dir = new TempDir();
        var attributes = SynthGenerator.Generate(dir.Path, Tiny);
        Assert.Equal(attributes, SynthAttributesFile.Read(Path.Combine(dir.Path, SynthAttributesFile.FileName)));
        foreach (var a in attributes)
        {
            foreach (var (field, vocabulary) in SynthAttributesFile.Vocabularies)
                Assert.Contains(SynthAttributesFile.Value(a, field), vocabulary);
            var tags = File.ReadAllText(Path.Combine(dir.Path, a.Id + ".txt"));
            Assert.Contains("character:" + a.Character, tags);
            Assert.Contains($"{a.HairColor}_hair", tags);
            Assert.Contains($"{a.EyeColor}_eyes", tags);
            // The face box lies on the figure: most of its pixels are inside the mask.
            var box = File.ReadAllText(Path.Combine(dir.Path, a.Id + ".face.txt")).Split(' ').Select(s => float.Parse(s, System.Globalization.CultureInfo.InvariantCulture)).ToArray();
            Assert.True(box[2] > 0.05 && box[3] > 0.05, $"{a.Id}: face box too small");
            var (mask, _) = ImageProbe.TryDecode(Path.Combine(dir.Path, a.Id + ".mask.png"));
            using (mask)
            {
                var rect = Crops.BoxToPixels(box, mask!.Width, mask.Height);
                int inside = 0, total = 0;
                for (int y = rect.Top; y < rect.Bottom; y++)
                    for (int x = rect.Left; x < rect.Right; x++) { total++; if (mask.GetPixel(x, y).Red > 127) inside++; }
                Assert.True(inside > total / 2, $"{a.Id}: face box mostly off the figure ({inside}/{total})");
            }
        }
    }

    [Fact]
    public void Identity_attributes_stay_distinguishable_at_32_px()
    {
        // Two characters that differ in hair colour, drawn in the same scene, must differ in the downscaled head region.
        var world = SynthWorld.Create(8, 1, 3);
        var first = world[0];
        var other = world.First(c => c.HairColor != first.HairColor);
        var scene = new SynthScene("standing", "smile", "simple", "inkline", 0.5f, 0.95f, 0.8f, 0, false, 1);
        using var a = FigureRenderer.Render(first, first.Outfits[0], scene, 64);
        using var b = FigureRenderer.Render(other with { Outfits = first.Outfits }, first.Outfits[0], scene, 64);
        using var a32 = a.Image.Resize(new SkiaSharp.SKImageInfo(32, 32, SkiaSharp.SKColorType.Rgba8888, SkiaSharp.SKAlphaType.Premul), new SkiaSharp.SKSamplingOptions(SkiaSharp.SKFilterMode.Linear));
        using var b32 = b.Image.Resize(new SkiaSharp.SKImageInfo(32, 32, SkiaSharp.SKColorType.Rgba8888, SkiaSharp.SKAlphaType.Premul), new SkiaSharp.SKSamplingOptions(SkiaSharp.SKFilterMode.Linear));
        var face = Crops.BoxToPixels(a.FaceBox, 32, 32);
        double difference = 0;
        for (int y = face.Top; y < face.Bottom; y++)
            for (int x = face.Left; x < face.Right; x++)
            {
                var p = a32.GetPixel(x, y); var q = b32.GetPixel(x, y);
                difference += Math.Abs(p.Red - q.Red) + Math.Abs(p.Green - q.Green) + Math.Abs(p.Blue - q.Blue);
            }
        double perPixel = difference / (face.Width * face.Height);
        Assert.True(perPixel > 20, $"hair colours {first.HairColor} and {other.HairColor} differ by only {perPixel:F1} per face pixel at 32 px");
    }

    [Fact]
    public void The_most_outfits_a_setting_allows_can_be_drawn_for_every_hair_colour()
    {
        // 9 outfits hung forever for hair colours that are also garment colours (a top never takes the hair colour).
        var world = SynthWorld.Create(40, SynthVocabulary.MaxOutfitsPerCharacter, 5);
        Assert.Contains(world, c => SynthVocabulary.GarmentColors.Any(g => g.Name == c.HairColor));
        foreach (var character in world)
        {
            var tops = character.Outfits.Select(o => o.TopColor).ToList();
            Assert.Equal(SynthVocabulary.MaxOutfitsPerCharacter, tops.Distinct().Count());
            Assert.DoesNotContain(character.HairColor, tops);
        }
        Assert.Throws<ArgumentOutOfRangeException>(() => SynthWorld.Create(4, SynthVocabulary.MaxOutfitsPerCharacter + 1, 5));
    }

    [Fact]
    public void World_characters_differ_in_two_face_attributes_and_outfits_in_top_colour()
    {
        var world = SynthWorld.Create(24, 3, 1234);
        for (int i = 0; i < world.Count; i++)
        {
            Assert.Equal(3, world[i].Outfits.Select(o => o.TopColor).Distinct().Count());
            for (int j = i + 1; j < world.Count; j++)
            {
                var (p, q) = (world[i], world[j]);
                int differences = (p.HairColor != q.HairColor ? 1 : 0) + (p.HairStyle != q.HairStyle ? 1 : 0) + (p.EyeColor != q.EyeColor ? 1 : 0)
                    + (p.SkinTone != q.SkinTone ? 1 : 0) + (p.Accessory != q.Accessory ? 1 : 0);
                Assert.True(differences >= 2, $"{p.Name} and {q.Name} differ in {differences} face attributes");
            }
        }
    }

    [Fact]
    public void Independent_pictures_are_reproducible_and_their_attributes_do_not_follow_each_other()
    {
        var a = SynthGenerator.RenderIndependentPictures(240, 32, seed: 3);
        var b = SynthGenerator.RenderIndependentPictures(240, 32, seed: 3);
        var c = SynthGenerator.RenderIndependentPictures(8, 32, seed: 4);
        try
        {
            Assert.Equal(240, a.Count);
            Assert.All(a, p => Assert.Equal((32, 32), (p.Image.Width, p.Image.Height)));
            for (int i = 0; i < 8; i++)
            {
                Assert.Equal(ImageTensor.EncodePng(a[i].Image), ImageTensor.EncodePng(b[i].Image));
                Assert.Equal(a[i].Attributes, b[i].Attributes);
            }
            Assert.NotEqual(a.Take(8).Select(p => Convert.ToHexString(ImageTensor.EncodePng(p.Image))), c.Select(p => Convert.ToHexString(ImageTensor.EncodePng(p.Image))));
            // Every picture is a new character: its hair colour says nothing about its eyes or top (a world of a few
            // characters ties them together), and the top is never in the hair colour, as in the generator's worlds.
            foreach (var group in a.GroupBy(p => p.Attributes.HairColor).Where(g => g.Count() >= 20))
            {
                Assert.True(group.Select(p => p.Attributes.EyeColor).Distinct().Count() >= 4, $"{group.Key} hair: eye colours {string.Join(",", group.Select(p => p.Attributes.EyeColor).Distinct())}");
                Assert.True(group.Select(p => p.Attributes.TopColor).Distinct().Count() >= 5, $"{group.Key} hair: top colours");
            }
            Assert.All(a, p => Assert.NotEqual(p.Attributes.HairColor, p.Attributes.TopColor));
            Assert.True(a.Select(p => (p.Attributes.HairColor, p.Attributes.HairStyle, p.Attributes.EyeColor, p.Attributes.Accessory)).Distinct().Count() > 180);
            Assert.Equal(SynthVocabulary.Poses.Count, a.Select(p => p.Attributes.Pose).Distinct().Count());
        }
        finally
        {
            foreach (var (image, _) in a.Concat(b).Concat(c)) image.Dispose();
        }
        Assert.Throws<ArgumentOutOfRangeException>(() => SynthGenerator.RenderIndependentPictures(0, 32, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => SynthGenerator.RenderIndependentPictures(4, 8, 1));
    }

    [Fact]
    public void Refuses_to_overwrite_a_folder_it_did_not_make()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("precious.txt"), "user data");
        Assert.Throws<IOException>(() => SynthGenerator.Generate(dir.Path, Tiny));
        Assert.True(File.Exists(dir.File("precious.txt")));
    }
}

using RetriBooru.Settings;
using RetriBooru.Data;
using RetriBooru.Metrics;
using Xunit;

namespace RetriBooru.Tests;

public class PromptViewAndAgreementTests
{
    const string SynthPrompt = "isamu_(retribooru_synth), 1girl, solo, blonde_hair, twintails, blue_eyes, hair_ribbon, serafuku, pink_serafuku, long_skirt, green_skirt, hands_on_hips, smile, gradient_background, full_body";

    [Fact]
    public void Context_view_removes_name_face_and_clothing_tags_and_keeps_the_scene()
    {
        Assert.Equal("1girl, solo, hands_on_hips, smile, gradient_background, full_body",
            PromptViews.Apply(RetriBooru.Settings.PromptView.Context, SynthPrompt, "isamu_(retribooru_synth)"));
        Assert.Equal(SynthPrompt, PromptViews.Apply(RetriBooru.Settings.PromptView.Full, SynthPrompt, "isamu_(retribooru_synth)"));
        // Real Danbooru tags: a character without a qualifier, hairstyles and accessories, garments with colours.
        Assert.Equal("1girl, looking_at_viewer, outdoors",
            PromptViews.Apply(RetriBooru.Settings.PromptView.Context, "hatsune_miku, 1girl, aqua_hair, long_hair, twintails, hair_ornament, detached_sleeves, black_thighhighs, looking_at_viewer, outdoors", "hatsune_miku"));
        Assert.Equal("", PromptViews.Apply(RetriBooru.Settings.PromptView.Context, "", null));
        var parsed = Assert.Throws<ArgumentException>(() => RetriBooru.Settings.Words.Parse<RetriBooru.Settings.PromptView>("short"));
        Assert.Equal("unknown view 'short'; use full or context", parsed.Message);
        Assert.Equal(RetriBooru.Settings.PromptView.Full, new RetriBooru.Diffusion.ReferenceTrainingOptions().PromptView);
        Assert.Equal("full", RetriBooru.Settings.PromptView.Full.Name());
        Assert.Equal(RetriBooru.Settings.PromptView.Context, new EvaluationOptions().PromptView);
    }

    [Fact]
    public void Every_identity_tag_the_synthetic_world_writes_is_removed_by_the_context_view()
    {
        using var dir = new TempDir();
        var data = Path.Combine(dir.Path, "d");
        Data.Synth.SynthDataset.Create(data, new Data.Synth.SynthOptions { Characters = 6, OutfitsPerCharacter = 2, ImagesPerCharacter = 6, Size = 32, Seed = 3 });
        var attributes = Data.Synth.SynthAttributesFile.Read(data).ToDictionary(a => a.Id);
        foreach (var record in DatasetLayout.ReadRecords(data))
        {
            var context = PromptViews.Apply(RetriBooru.Settings.PromptView.Context, record.Prompts, record.Character).Split(", ");
            var a = attributes[record.Id];
            var identity = new List<string> { record.Character!, a.HairColor + "_hair", Data.Synth.SynthVocabulary.HairStyleTag(a.HairStyle), a.EyeColor + "_eyes", a.Accessory,
                Data.Synth.SynthVocabulary.GarmentTag(a.Top), Data.Synth.SynthVocabulary.ColorGarmentTag(a.TopColor, a.Top) };
            if (a.Bottom != "none") identity.AddRange([Data.Synth.SynthVocabulary.GarmentTag(a.Bottom), Data.Synth.SynthVocabulary.ColorGarmentTag(a.BottomColor, a.Bottom)]);
            Assert.All(identity, t => Assert.Contains(t == "none" ? "1girl" : t, t == "none" ? "1girl" : record.Prompts));
            Assert.DoesNotContain(context, identity.Contains);
            Assert.Contains(context, t => t == "1girl");
        }
    }

    [Fact]
    public void Expected_attributes_are_the_majority_of_the_references_and_agreement_is_the_fraction_right()
    {
        var truths = new List<IReadOnlyDictionary<string, string>>
        {
            new Dictionary<string, string> { ["hair_color"] = "red", ["eye_color"] = "blue" },
            new Dictionary<string, string> { ["hair_color"] = "black", ["eye_color"] = "blue" },
            new Dictionary<string, string> { ["hair_color"] = "black", ["eye_color"] = "green" },
        };
        var expected = AttributeAgreement.Expected(truths, ["hair_color", "eye_color", "accessory"]);
        Assert.Equal(new Dictionary<string, string> { ["hair_color"] = "black", ["eye_color"] = "blue" }, expected);
        // A tie goes to the first reference.
        Assert.Equal("red", AttributeAgreement.Expected(truths.Take(2).ToList(), ["hair_color"])["hair_color"]);

        Assert.Equal(1.0, AttributeAgreement.Score(new Dictionary<string, string> { ["hair_color"] = "black", ["eye_color"] = "blue", ["pose"] = "x" }, expected));
        Assert.Equal(0.5, AttributeAgreement.Score(new Dictionary<string, string> { ["hair_color"] = "black", ["eye_color"] = "red" }, expected));
        Assert.Equal(0.0, AttributeAgreement.Score(new Dictionary<string, string>(), expected));
        Assert.Null(AttributeAgreement.Score(new Dictionary<string, string> { ["hair_color"] = "black" }, new Dictionary<string, string>()));
    }

    [Fact]
    public void Ground_truth_expects_face_attributes_from_face_references_and_outfit_from_clothes_references()
    {
        static Data.Synth.SynthAttributes Image(string id, string hair, string top) => new()
        {
            Id = id, Character = "c", HairColor = hair, HairStyle = "long", EyeColor = "blue", SkinTone = "light", Accessory = "none",
            Top = "hoodie", TopColor = top, Bottom = "pants", BottomColor = "black", Pose = "standing", Expression = "smile",
            Background = "simple", Artist = "a", Position = "center", Scale = "medium",
        };
        var truth = AttributeGroundTruth.FromSynth([Image("1", "red", "green"), Image("2", "red", "yellow"), Image("3", "blue", "yellow")]);
        var expected = truth.Expected([(Concept.Face, "1"), (Concept.Face, "2"), (Concept.Clothes, "3"), (Concept.Clothes, "missing")]);
        Assert.Equal("red", expected.Face["hair_color"]);
        Assert.False(expected.Face.ContainsKey("top_color"));
        Assert.Equal("yellow", expected.Clothes["top_color"]);
        Assert.False(expected.Clothes.ContainsKey("hair_color"));
        Assert.True(truth.Expected([(Concept.Face, "missing")]).IsEmpty);
    }
}

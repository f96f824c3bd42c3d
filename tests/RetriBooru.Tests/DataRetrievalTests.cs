using RetriBooru.Settings;
using RetriBooru.Data;
using RetriBooru.Data.Retrieval;
using RetriBooru.Imaging;
using Xunit;

namespace RetriBooru.Tests;

public class DataRetrievalTests(SmallSynthDataset data) : IClassFixture<SmallSynthDataset>
{
    [Fact]
    public void Scheme_b_references_are_other_images_of_the_same_identity_with_concept_words()
    {
        var byId = data.Result.Records.ToDictionary(r => r.Id);
        var manifest = data.Result.Manifests["b"];
        Assert.NotEmpty(manifest);
        foreach (var example in manifest)
        {
            var target = byId[example.Target];
            Assert.Equal(2, example.References.Count(r => r.Concept == Concept.Face));
            Assert.Equal(2, example.References.Count(r => r.Concept == Concept.Clothes));
            Assert.Equal(target.Prompts, example.Prompt);
            Assert.Equal(target.Split, example.Split);
            foreach (var reference in example.References)
            {
                Assert.NotEqual(example.Target, reference.SourceId);
                var source = byId[reference.SourceId];
                Assert.Equal(target.Character, source.Character);
                if (reference.Concept == Concept.Clothes) Assert.Equal(target.ClothingId, source.ClothingId);
                Assert.True(File.Exists(Path.Combine(data.Dir, reference.Image)), reference.Image);
                Assert.True(PerceptualHash.Distance(PerceptualHash.FromHex(target.Phash!), PerceptualHash.FromHex(source.Phash!)) > PerceptualHash.DefaultThreshold);
            }
        }
        Assert.True(data.Result.Stats.Manifests["b"].Leakage.IsLeakageFree);
    }

    [Fact]
    public void Scheme_b_never_uses_a_ground_truth_near_duplicate_of_the_target()
    {
        // The generator records which images are reposts / shifted / recoloured / zoomed variants of which.
        var family = data.Attributes.ToDictionary(a => a.Id, a => a.VariantOf ?? a.Id);
        Assert.Contains(data.Attributes, a => a.VariantOf is not null);
        foreach (var example in data.Result.Manifests["b"])
            foreach (var reference in example.References)
                Assert.NotEqual(family[example.Target], family[reference.SourceId]);
    }

    [Fact]
    public void Train_targets_only_see_train_images_and_unseen_characters_are_disjoint()
    {
        var records = data.Result.Records;
        var byId = records.ToDictionary(r => r.Id);
        var unseenCharacters = records.Where(r => r.Split == SplitNames.Unseen).Select(r => r.Character).ToHashSet();
        var seenCharacters = records.Where(r => r.Split != SplitNames.Unseen).Select(r => r.Character).ToHashSet();
        Assert.NotEmpty(unseenCharacters);
        Assert.Empty(unseenCharacters.Intersect(seenCharacters));
        Assert.Contains(records, r => r.Split == SplitNames.Heldout);
        foreach (var example in data.Result.Manifests["b"].Where(e => e.Split == SplitNames.Train))
            Assert.All(example.References, r => Assert.Equal(SplitNames.Train, byId[r.SourceId].Split));
    }

    [Fact]
    public void Scheme_a_uses_the_target_itself_and_the_check_says_so()
    {
        var manifest = data.Result.Manifests["a"];
        Assert.All(manifest, e => Assert.All(e.References, r => Assert.Equal(e.Target, r.SourceId)));
        var leakage = data.Result.Stats.Manifests["a"].Leakage;
        Assert.False(leakage.IsLeakageFree);
        Assert.Equal(leakage.References, leakage.SelfReferences);
        Assert.True(File.Exists(Path.Combine(data.Dir, manifest[0].References[1].Image)));
        Assert.EndsWith("_mirror.png", manifest[0].References[1].Image);
    }

    [Fact]
    public void Leakage_check_catches_each_kind_of_violation()
    {
        var records = data.Result.Records;
        var manifest = data.Result.Manifests["b"].ToList();
        Assert.True(LeakageCheck.Check(manifest, records, PerceptualHash.DefaultThreshold).IsLeakageFree);
        var example = manifest.First(e => e.Split == SplitNames.Train);
        var target = records.Single(r => r.Id == example.Target);

        TrainingExample WithReference(string sourceId, Concept concept) => example with
        {
            References = [.. example.References.Skip(1), ReferenceRetrieval.Reference(new CropRequest(sourceId, concept, false))],
        };
        LeakageReport CheckOne(TrainingExample e) => LeakageCheck.Check([e], records, PerceptualHash.DefaultThreshold);

        Assert.Equal(1, CheckOne(WithReference(target.Id, Concept.Face)).SelfReferences);
        var otherCharacter = records.First(r => r.Character != target.Character && r.Split == SplitNames.Train);
        Assert.Equal(1, CheckOne(WithReference(otherCharacter.Id, Concept.Face)).IdentityMismatches);
        var otherOutfit = records.FirstOrDefault(r => r.Character == target.Character && r.ClothingId != target.ClothingId && r.Split == SplitNames.Train);
        if (otherOutfit is not null) Assert.Equal(1, CheckOne(WithReference(otherOutfit.Id, Concept.Clothes)).IdentityMismatches);
        var heldout = records.FirstOrDefault(r => r.Character == target.Character && r.Split == SplitNames.Heldout);
        if (heldout is not null) Assert.True(CheckOne(WithReference(heldout.Id, Concept.Face)).SplitLeaks >= 1);
        // A near-duplicate: give a same-identity image the target's hash.
        var twin = records.First(r => r.Id != target.Id && r.Character == target.Character && r.ClothingId == target.ClothingId && r.Split == SplitNames.Train);
        var doctored = records.Select(r => r.Id == twin.Id ? r with { Phash = target.Phash } : r).ToList();
        Assert.Equal(1, LeakageCheck.Check([WithReference(twin.Id, Concept.Clothes)], doctored, PerceptualHash.DefaultThreshold).NearDuplicateReferences);
        Assert.Equal(1, CheckOne(WithReference("no-such-image", Concept.Face)).BrokenReferences);
    }

    [Fact]
    public void Manifest_reader_round_trips_and_filters_by_split()
    {
        var all = ManifestReader.Read(data.Dir, ReferenceScheme.B);
        Assert.Equal(data.Result.Manifests["b"].Select(ManifestReader.Serialize), all.Select(ManifestReader.Serialize));
        var train = ManifestReader.Read(data.Dir, ReferenceScheme.B, SplitNames.Train);
        Assert.All(train, e => Assert.Equal(SplitNames.Train, e.Split));
        Assert.Equal(data.Result.Stats.Manifests["b"].ExamplesBySplit[SplitNames.Train], train.Count);
        var report = LeakageCheck.CheckManifest(data.Dir, Path.Combine(data.Dir, DatasetLayout.ManifestPath(ReferenceScheme.B)));
        Assert.True(report.IsLeakageFree);
    }

    [Fact]
    public void Manifest_files_load_as_tensors_for_the_trainer()
    {
        Torch.Load();
        var example = ManifestReader.Read(data.Dir, ReferenceScheme.B, SplitNames.Train)[0];
        using var image = ImageTensor.Load(ManifestReader.Resolve(data.Dir, example.Image), 32);
        using var mask = ImageTensor.LoadMask(ManifestReader.Resolve(data.Dir, example.Mask!), 32);
        Assert.Equal(new long[] { 3, 32, 32 }, image.shape);
        Assert.Equal(new long[] { 1, 32, 32 }, mask.shape);
        double figure = mask.mean().item<float>();
        Assert.InRange(figure, 0.03, 0.7);
        foreach (var reference in example.References)
        {
            using var crop = ImageTensor.Load(ManifestReader.Resolve(data.Dir, reference.Image), 32);
            Assert.Equal(new long[] { 3, 32, 32 }, crop.shape);
            Assert.InRange(crop.min().item<float>(), -1f, 1f);
        }

        // A manifest line whose reference leads outside the dataset is skipped with the reason; the others load.
        var escaping = example with { References = [example.References[0] with { Image = "../../../etc/passwd" }, .. example.References.Skip(1)] };
        using var loaded = new RetriBooru.Diffusion.ReferenceDataset(data.Dir, [example, escaping], 32);
        Assert.Equal(1, loaded.Count);
        Assert.Contains("'../../../etc/passwd' leads outside", Assert.Single(loaded.Skipped).Reason);
    }

    [Fact]
    public void Reference_count_is_configurable_and_seeded()
    {
        var options = new RetrievalOptions { FaceReferences = 1, ClothesReferences = 3, Seed = 5 };
        var (first, _, _) = ReferenceRetrieval.Build(data.Result.Records, ReferenceScheme.B, options);
        var (again, _, _) = ReferenceRetrieval.Build(data.Result.Records, ReferenceScheme.B, options);
        var (other, _, _) = ReferenceRetrieval.Build(data.Result.Records, ReferenceScheme.B, options with { Seed = 6 });
        Assert.All(first, e => { Assert.Single(e.References, r => r.Concept == Concept.Face); Assert.Equal(3, e.References.Count(r => r.Concept == Concept.Clothes)); });
        Assert.Equal(first.Select(ManifestReader.Serialize), again.Select(ManifestReader.Serialize));
        Assert.NotEqual(first.Select(ManifestReader.Serialize), other.Select(ManifestReader.Serialize));
    }
}
